//! The command line: `validate`, the embedded default, graceful shutdown.

use std::process::Command;

use auditcol_e2e::{Collector, binary, file_lines, flipt_event, http_post, send_with_python_sdk};

fn validate(config: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(binary())
        .args(["validate", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `${env:NAME}` references in `text` whose names end in `_SECRET`.
fn secret_variables(text: &str) -> Vec<&str> {
    text.split("${env:")
        .skip(1)
        .filter_map(|rest| rest.split(['}', ':']).next())
        .filter(|name| name.ends_with("_SECRET"))
        .collect()
}

#[test]
fn validate_prints_ok_for_every_shipped_config() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector-config");
    // TLS files are read by validate: certificates made now, where the
    // configs find them (`${env:AUDITCOL_TLS_DIR}`).
    let tls = tempfile::tempdir().unwrap();
    auditcol_testkit::pki::TestPki::generate(tls.path());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // Shipped configs read secrets from the environment, as in production.
        let mut command = Command::new(binary());
        command.env("AUDITCOL_TLS_DIR", tls.path());
        for name in secret_variables(&text) {
            command.env(name, format!("stand-in for {name}"));
        }
        let out = command
            .args(["validate", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    }
}

#[test]
fn validate_refuses_a_webhook_secret_left_empty_by_an_unset_variable() {
    let (ok, _, stderr) = validate(
        "receivers: {webhook: {signing_secret: \"${env:AUDITCOL_TEST_UNSET_SECRET}\"}}\nexporters: {file: {}}\nservice: {pipelines: {logs: {receivers: [webhook], exporters: [file]}}}",
    );
    assert!(!ok);
    assert!(
        stderr.contains("receivers::webhook: signing_secret: is empty"),
        "{stderr}"
    );
}

#[test]
fn validate_names_component_and_key_path_and_exits_1() {
    let (ok, stdout, stderr) = validate(
        "receivers: {otlp: {protocols: {grpc: {endpiont: x}}}}\nexporters: {file: {}}\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [file]}}}",
    );
    assert!(!ok);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("receivers::otlp: protocols.grpc.endpiont: unknown field `endpiont`"),
        "{stderr}"
    );
}

#[test]
fn validate_warns_about_unused_components() {
    let (ok, stdout, stderr) = validate(
        "receivers: {otlp: {protocols: {grpc: {}}}}\nprocessors: {batch: {}}\nexporters: {file: {}}\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [file]}}}",
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "OK\n");
    assert!(
        stderr.contains("processors::batch is defined but used in no pipeline"),
        "{stderr}"
    );
}

#[test]
fn without_config_the_embedded_default_prints_console_lines() {
    // The default listens on the Collector's fixed ports 4317 and 4318.
    let collector = Collector::spawn(tempfile::tempdir().unwrap(), &[]);
    assert_eq!(collector.endpoint("grpc").to_string(), "127.0.0.1:4317");
    assert_eq!(collector.endpoint("http").to_string(), "127.0.0.1:4318");
    let events = serde_json::json!([flipt_event(
        "flag",
        "created",
        "flipt",
        "2024-05-01T10:00:00Z"
    )]);
    send_with_python_sdk("grpc", collector.endpoint("grpc"), &events);
    let lines = collector.stdout_lines(1);
    assert!(
        lines[0].starts_with(
            "2024-05-01T10:00:00.000Z flag:created success actor: authentication=none ip=172.17.0.1"
        ),
        "{}",
        lines[0]
    );
}

#[test]
fn sigterm_flushes_the_batch_before_exit() {
    // A long batch timeout: only the shutdown flush can write these events.
    let mut collector = Collector::start(
        r#"
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
processors: {batch: {timeout: 1h, send_batch_size: 100000, flush_when_idle: false}}
exporters: {file: {path: "{DIR}/audit.jsonl"}}
service: {pipelines: {logs: {receivers: [otlp], processors: [batch], exporters: [file]}}}
"#,
    );
    let http = collector.endpoint("http");
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": "1714557600000000000",
        "attributes": [
            {"key": "audit.type", "value": {"stringValue": "flag"}},
            {"key": "audit.action", "value": {"stringValue": "created"}}
        ]
    }]}]}]});
    // The client is held until the batch is exported, so send from another thread.
    let sender = std::thread::spawn(move || {
        http_post(
            http,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    });
    // Wait until the receiver has the request (it is then held in the batch processor), then stop.
    collector.wait_for_log("records received");
    let written = std::fs::read_to_string(collector.path("audit.jsonl")).unwrap_or_default();
    assert_eq!(
        written, "",
        "nothing may be written before shutdown flushes the batch"
    );
    let status = collector.terminate();
    assert!(status.success(), "{status:?}\n{}", collector.log());
    let response = sender.join().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let lines = file_lines(&collector.path("audit.jsonl"), 1);
    assert_eq!(
        lines,
        vec![
            r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{}},"payload":null,"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#
        ]
    );
}

/// The hard limit on open files of this process (inherited by children).
fn hard_open_file_limit() -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().to_owned()
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one_and_logged() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n\
         exporters:\n  file:\n    path: \"-\"\n\
         service:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [file]\n",
    )
    .unwrap();
    // Start it with a soft limit of 256, as a shell's `ulimit -Sn` would.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$0\" --set=service::telemetry::metrics::level=none --config \"$1\"")
        .arg(binary())
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut limit_line = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("open-file limit") {
            limit_line = Some(line.clone());
        }
        if line.contains("auditcol is running") || line.contains("error") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = limit_line.expect("no open-file limit line");
    let hard = hard_open_file_limit();
    let expected = if hard == "unlimited" {
        None
    } else {
        Some(hard)
    };
    assert!(line.contains("previous=256"), "{line}");
    if let Some(hard) = expected {
        assert!(line.contains(&format!("open_files={hard}")), "{line}");
    }
}

#[test]
fn graph_draws_the_pipelines_and_refuses_a_bad_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = root.join("collector-config/security-review.yaml");
    let run = |args: &[&str]| {
        let out = Command::new(binary()).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, mermaid, _) = run(&["graph", "--config", config.to_str().unwrap()]);
    assert!(ok);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("subgraph pipeline1[\"logs/trail\"]"),
        "{mermaid}"
    );
    let (ok, dot, _) = run(&[
        "graph",
        "--format",
        "dot",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(dot.starts_with("digraph auditcol {"), "{dot}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "receivers: {}\nservice: {pipelines: {}}\n").unwrap();
    let (ok, out, err) = run(&["graph", "--config", bad.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.starts_with("error: "), "{err}");
}

/// Runs the collector on `config` (in `dir`) until it exits or gets
/// SIGTERM after `seconds`.
fn run_to_exit(
    dir: &std::path::Path,
    config: &str,
    seconds: u32,
    env: &[(&str, &str)],
) -> std::process::Output {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new("timeout");
    command
        .args(["--preserve-status", "--signal=TERM", &seconds.to_string()])
        .arg(binary())
        .args(["--config", path.to_str().unwrap()])
        .current_dir(dir)
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn a_port_in_use_fails_the_start_once_and_creates_no_file_or_directory() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = format!(
        r#"
receivers:
  otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:0"}}, grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}
exporters:
  file: {{path: ./out/audit.jsonl, sending_queue: {{storage: ./queue}}}}
service: {{pipelines: {{logs: {{receivers: [otlp], exporters: [file]}}}}}}
"#
    );
    let out = run_to_exit(dir.path(), &config, 20, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let reason = format!("cannot listen on 127.0.0.1:{port} for OTLP/gRPC: Address already in use");
    assert_eq!(stderr.matches(&reason).count(), 1, "{stderr}");
    let mut created: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    created.sort();
    assert_eq!(created, ["config.yaml"], "{stderr}");
    drop(taken);
}

#[test]
fn telemetry_logs_set_the_level_and_the_json_encoding() {
    let dir = tempfile::tempdir().unwrap();
    // An unset variable is worth a WARN while the config loads.
    let config = r#"
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
exporters: {file: {path: "./audit${env:AUDITCOL_TEST_UNSET}.jsonl"}}
service:
  telemetry: {logs: {level: warn, encoding: json}}
  pipelines: {logs: {receivers: [otlp], exporters: [file]}}
"#;
    let out = run_to_exit(dir.path(), config, 2, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Ended by `timeout`'s SIGTERM: a clean shutdown.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // At `warn`, the INFO lines (listening, running, stopped) are left out.
    let levels: Vec<String> = stderr
        .lines()
        .map(|line| {
            let parsed: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            format!("{} {}", parsed["level"], parsed["message"])
        })
        .collect();
    assert_eq!(
        levels,
        [r#""WARN" "environment variable is not set: substituting an empty string""#],
        "{stderr}"
    );

    // RUST_LOG overrides the level; the encoding stays JSON.
    let out = run_to_exit(dir.path(), config, 2, &[("RUST_LOG", "info")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let running = stderr
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["message"] == "auditcol is running")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(running["level"], "INFO");
}

#[test]
fn the_python_example_of_the_readme_delivers_its_event() {
    let collector = Collector::start(
        r#"
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
exporters: {file: {path: "{DIR}/audit.jsonl"}}
service: {pipelines: {logs: {receivers: [otlp], exporters: [file]}}}
"#,
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/python/send_audit_event.py");
    let out = Command::new(auditcol_e2e::python())
        .arg(script)
        .arg(format!("http://{}", collector.endpoint("grpc")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = file_lines(&collector.path("audit.jsonl"), 1);
    let event: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (
            &event["type"],
            &event["action"],
            &event["metadata"]["actor"]["email"]
        ),
        (
            &"flag".into(),
            &"updated".into(),
            &"kyle@example.com".into()
        )
    );
    assert_eq!(
        event["payload"],
        serde_json::json!({"key": "dark-mode", "enabled": true})
    );
}

#[test]
fn security_review_config_does_what_its_comment_says() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../collector-config/security-review.yaml");
    let config = std::fs::read_to_string(path)
        .unwrap()
        .replace("127.0.0.1:4317", "127.0.0.1:0")
        .replace("127.0.0.1:4318", "127.0.0.1:0")
        .replace("./audit/", "{DIR}/");
    let collector = Collector::start(&config);
    let record = |noun: &str, verb: Option<&str>| {
        let mut attributes =
            vec![serde_json::json!({"key": "audit.type", "value": {"stringValue": noun}})];
        if let Some(verb) = verb {
            attributes
                .push(serde_json::json!({"key": "audit.action", "value": {"stringValue": verb}}));
        } else {
            attributes.clear();
        }
        serde_json::json!({"timeUnixNano": "1714557600000000000", "attributes": attributes,
                           "body": {"stringValue": format!("{noun} {verb:?}")}})
    };
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        record("flag", Some("deleted")),
        record("flag", Some("created")),
        record("segment", Some("deleted")),
        record("not-audit", None),
    ]}]}]});
    let reply = http_post(
        collector.endpoint("http"),
        "/v1/logs",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Deletions: full OTLP JSON, deletions only.
    let deletions = file_lines(&collector.path("deletions.otlp.jsonl"), 1);
    let deletions = deletions.join("\n");
    assert_eq!(
        deletions.matches(r#""stringValue":"deleted""#).count(),
        2,
        "{deletions}"
    );
    assert!(deletions.contains("resourceLogs"), "{deletions}");
    assert!(
        !deletions.contains("created") && !deletions.contains("not-audit"),
        "{deletions}"
    );
    // The trail: every audit event, in Flipt's format, and nothing else.
    let trail = file_lines(&collector.path("trail.jsonl"), 3);
    let events: Vec<(String, String)> = trail
        .iter()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["version"], "0.2", "{line}");
            (
                event["type"].as_str().unwrap().to_owned(),
                event["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut events = events;
    events.sort();
    assert_eq!(
        events,
        [
            ("flag".into(), "created".into()),
            ("flag".into(), "deleted".into()),
            ("segment".into(), "deleted".into())
        ]
    );
}
