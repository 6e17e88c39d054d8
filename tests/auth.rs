//! Receiver and exporter authentication in the real binary, through the
//! `bearertokenauth` and `basicauth` extensions: the official OpenTelemetry
//! Python SDK (its `headers` option) gets in with the right credentials,
//! raw requests without or with wrong ones are refused (gRPC
//! UNAUTHENTICATED, HTTP 401) and nothing of them is written, and no
//! credential appears anywhere in the collector's log.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use auditcol_e2e::{
    Collector, HttpResponse, file_lines, flipt_event, http_post, send_with_python_sdk_and_headers,
};
use auditcol_model::{AuditEvent, ExportLogsServiceRequest, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use serde_json::json;

const TOKEN: &str = "e2e-bearer-token-3b9f0c51";
const WRONG_TOKEN: &str = "e2e-wrong-token-77aa02";

/// `flipt`'s bcrypt entry, made with crypt(3) of libxcrypt (cost 4, for speed).
const HTPASSWD: &str = "flipt:$2y$04$Kx7Qd2mWv9bN3sLp5tR8eOFi7MTwP3AUgz7uKvPpP8f5d/VSf3Gfy\n";
const PASSWORD: &str = "flipt-password-1";
const WRONG_PASSWORD: &str = "e2e-wrong-password-5d1";
/// base64 of `flipt:flipt-password-1`
const BASIC: &str = "Basic ZmxpcHQ6ZmxpcHQtcGFzc3dvcmQtMQ==";
/// base64 of `flipt:e2e-wrong-password-5d1`
const BASIC_WRONG: &str = "Basic ZmxpcHQ6ZTJlLXdyb25nLXBhc3N3b3JkLTVkMQ==";

/// Both protocols checked by `authenticator`, into `{DIR}/audit.jsonl`.
fn otlp_config(authenticator: &str) -> String {
    format!(
        r#"
extensions:
  bearertokenauth/ingest:
    token: ${{env:INGEST_TOKEN}}
  basicauth/ingest:
    htpasswd:
      file: "{{DIR}}/htpasswd"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "127.0.0.1:0"
        auth: {{authenticator: {authenticator}}}
      http:
        endpoint: "127.0.0.1:0"
        auth: {{authenticator: {authenticator}}}
exporters:
  file: {{path: "{{DIR}}/audit.jsonl", format: json}}
service:
  extensions: [bearertokenauth/ingest, basicauth/ingest]
  pipelines:
    logs: {{receivers: [otlp], exporters: [file]}}
"#
    )
}

fn start(dir: &Path, config: &str) -> Collector {
    std::fs::write(dir.join("htpasswd"), HTPASSWD).unwrap();
    Collector::start_in_with_env(dir, config, &[("INGEST_TOKEN", TOKEN)])
}

fn events(key: &str, n: usize) -> serde_json::Value {
    (0..n)
        .map(|i| {
            flipt_event(
                "flag",
                "created",
                &format!("{key}-{i}"),
                "2024-05-01T10:00:00Z",
            )
        })
        .collect()
}

/// A one-record OTLP/JSON body, as a raw client would post it.
fn otlp_json_body(key: &str) -> Vec<u8> {
    let mut event = AuditEvent::new("flag", "created");
    event.payload = json!({"key": key});
    serde_json::to_vec(&request(&event)).unwrap()
}

fn request(event: &AuditEvent) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![event.to_log_record()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn post_http(collector: &Collector, authorization: Option<&str>) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    http_post(
        collector.endpoint("http"),
        "/v1/logs",
        &headers,
        &otlp_json_body("refused-over-http"),
    )
}

/// A raw gRPC export (tonic), with `authorization` metadata when given.
fn export_grpc(endpoint: SocketAddr, authorization: Option<&str>) -> Result<(), tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://{endpoint}"))
            .await
            .unwrap();
        let mut event = AuditEvent::new("flag", "created");
        event.payload = json!({"key": "refused-over-grpc"});
        let mut request = tonic::Request::new(request(&event));
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        client.export(request).await.map(|_| ())
    })
}

/// The keys of the events written so far.
fn written_keys(collector: &Collector, at_least: usize) -> Vec<String> {
    file_lines(&collector.path("audit.jsonl"), at_least)
        .iter()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["payload"]["key"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// None of `secrets` appears anywhere in what the collector logged.
fn assert_log_holds_none_of(collector: &Collector, secrets: &[&str]) {
    let log = collector.log();
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "the collector's log holds a credential ({secret}):\n{log}"
        );
    }
}

/// Refusals first (raw HTTP and gRPC), then the Python SDK with the right
/// credential over both protocols: only the SDK's events are written.
fn refuse_then_accept(collector: &Collector, right: &str, wrong: &str, challenge: &str) {
    for authorization in [None, Some(wrong)] {
        let reply = post_http(collector, authorization);
        assert_eq!(reply.status, 401, "{authorization:?}: {}", reply.text());
        assert_eq!(reply.header("WWW-Authenticate"), Some(challenge));
        let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(status["code"], 16, "google.rpc.Status UNAUTHENTICATED");

        let refused = export_grpc(collector.endpoint("grpc"), authorization).unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::Unauthenticated,
            "{authorization:?}"
        );
    }

    for (protocol, n) in [("grpc", 2), ("http", 3)] {
        let summary = send_with_python_sdk_and_headers(
            protocol,
            collector.endpoint(protocol),
            &events(&format!("sdk-{protocol}"), n),
            &[("authorization", right)],
        );
        assert_eq!(summary, json!({"exported": n, "failed": 0}), "{protocol}");
    }

    let mut keys = written_keys(collector, 5);
    keys.sort();
    assert_eq!(
        keys,
        [
            "sdk-grpc-0",
            "sdk-grpc-1",
            "sdk-http-0",
            "sdk-http-1",
            "sdk-http-2"
        ],
        "only what the SDK sent with the right credential"
    );
    let log = collector.log();
    assert!(
        log.contains("refused a request: not authenticated"),
        "refusals are logged:\n{log}"
    );
}

#[test]
fn bearer_tokens_let_the_sdk_in_over_grpc_and_http_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let collector = start(dir.path(), &otlp_config("bearertokenauth/ingest"));
    refuse_then_accept(
        &collector,
        &format!("Bearer {TOKEN}"),
        &format!("Bearer {WRONG_TOKEN}"),
        "Bearer",
    );
    assert_log_holds_none_of(&collector, &[TOKEN, WRONG_TOKEN]);
}

#[test]
fn basic_credentials_let_the_sdk_in_over_grpc_and_http_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let collector = start(dir.path(), &otlp_config("basicauth/ingest"));
    refuse_then_accept(&collector, BASIC, BASIC_WRONG, "Basic realm=\"auditcol\"");
    assert_log_holds_none_of(
        &collector,
        &[
            PASSWORD,
            WRONG_PASSWORD,
            BASIC.trim_start_matches("Basic "),
            BASIC_WRONG.trim_start_matches("Basic "),
            "$2y$04$Kx7Qd2",
        ],
    );
}

#[test]
fn a_rotated_tokens_file_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "old-token-aaaa # the first\n").unwrap();
    let config = r#"
extensions:
  bearertokenauth/ingest:
    filename: "{DIR}/tokens"
receivers:
  otlp:
    protocols:
      http:
        endpoint: "127.0.0.1:0"
        auth: {authenticator: bearertokenauth/ingest}
exporters:
  file: {path: "{DIR}/audit.jsonl", format: json}
service:
  extensions: [bearertokenauth/ingest]
  pipelines:
    logs: {receivers: [otlp], exporters: [file]}
"#;
    let collector = Collector::start_in(dir.path(), config, &[]);
    assert_eq!(
        post_http(&collector, Some("Bearer old-token-aaaa")).status,
        200
    );
    assert_eq!(
        post_http(&collector, Some("Bearer new-token-bbbb")).status,
        401
    );

    // The new token replaces the old one in a rename, as mounted secrets do.
    let next = dir.path().join("tokens.next");
    std::fs::write(&next, "new-token-bbbb\n").unwrap();
    std::fs::rename(&next, dir.path().join("tokens")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while post_http(&collector, Some("Bearer new-token-bbbb")).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the new token was not read:\n{}",
            collector.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        post_http(&collector, Some("Bearer old-token-aaaa")).status,
        401
    );
    collector.wait_for_log("tokens file changed: its new entries are in force");
    assert_log_holds_none_of(&collector, &["old-token-aaaa", "new-token-bbbb"]);
}

#[test]
fn the_webhook_receiver_asks_for_the_token_on_top_of_the_signature() {
    let config = r#"
extensions:
  bearertokenauth/flipt:
    token: ${env:FLIPT_WEBHOOK_TOKEN}
receivers:
  webhook/flipt:
    endpoint: "127.0.0.1:0"
    path: /flipt
    signing_secret: ${env:FLIPT_WEBHOOK_SECRET}
    auth: {authenticator: bearertokenauth/flipt}
exporters:
  file: {path: "{DIR}/audit.jsonl", format: json}
service:
  extensions: [bearertokenauth/flipt]
  pipelines:
    logs: {receivers: [webhook/flipt], exporters: [file]}
"#;
    const SECRET: &str = "e2e-webhook-signing-secret";
    let collector = Collector::start_with_env(
        config,
        &[
            ("FLIPT_WEBHOOK_TOKEN", TOKEN),
            ("FLIPT_WEBHOOK_SECRET", SECRET),
        ],
    );
    let endpoint = collector.component_endpoint("webhook/flipt");
    let post = |key: &str, authorization: Option<&str>, signed: bool| {
        let body = flipt_event("flag", "created", key, "2024-05-01T10:00:00Z").to_string();
        let signature = auditcol_e2e::sign_with_documented_snippet(SECRET, body.as_bytes());
        let mut headers = vec![("Content-Type", "application/json")];
        if signed {
            headers.push(("x-flipt-webhook-signature", signature.as_str()));
        }
        if let Some(value) = authorization {
            headers.push(("Authorization", value));
        }
        http_post(endpoint, "/flipt", &headers, body.as_bytes())
    };
    let bearer = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {WRONG_TOKEN}");

    let reply = post("signed-no-token", None, true);
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
    assert_eq!(post("signed-wrong-token", Some(&wrong), true).status, 401);
    let reply = post("token-not-signed", Some(&bearer), false);
    assert_eq!(reply.status, 401, "the signature is still required");
    assert!(
        reply.text().contains("missing x-flipt-webhook-signature"),
        "{}",
        reply.text()
    );
    let reply = post("accepted", Some(&bearer), true);
    assert_eq!(reply.status, 200, "{}", reply.text());

    assert_eq!(written_keys(&collector, 1), ["accepted"]);
    assert_log_holds_none_of(&collector, &[TOKEN, WRONG_TOKEN, SECRET]);
}

/// B: an OTLP receiver whose protocols ask for B's token, into a file.
const B: &str = r#"
extensions:
  bearertokenauth/agents:
    token: ${env:INGEST_TOKEN}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0", auth: {authenticator: bearertokenauth/agents}}
      http: {endpoint: "127.0.0.1:0", auth: {authenticator: bearertokenauth/agents}}
exporters:
  file: {path: "{DIR}/audit.jsonl", format: json}
service:
  extensions: [bearertokenauth/agents]
  pipelines:
    logs: {receivers: [otlp], exporters: [file]}
"#;

/// A: an OTLP receiver forwarding with `exporter` (YAML of one exporter
/// named `forward`, `{B}` standing for B's address) and its token.
fn a_config(exporter_type: &str, exporter: &str) -> String {
    format!(
        r#"
extensions:
  bearertokenauth/to_b:
    token: ${{env:B_TOKEN}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  {exporter_type}/forward: {exporter}
service:
  extensions: [bearertokenauth/to_b]
  pipelines:
    logs: {{receivers: [otlp], exporters: [{exporter_type}/forward]}}
"#
    )
}

fn chain(exporter_type: &str, exporter: &str, protocol: &str) {
    let b = Collector::start_with_env(B, &[("INGEST_TOKEN", TOKEN)]);
    let exporter = exporter.replace("{B}", &b.endpoint(protocol).to_string());
    let a = Collector::start_with_env(&a_config(exporter_type, &exporter), &[("B_TOKEN", TOKEN)]);
    let summary = auditcol_e2e::send_with_python_sdk(
        "grpc",
        a.endpoint("grpc"),
        &events(&format!("via-{exporter_type}"), 3),
    );
    assert_eq!(summary, json!({"exported": 3, "failed": 0}));
    let mut keys = written_keys(&b, 3);
    keys.sort();
    let prefix = format!("via-{exporter_type}");
    assert_eq!(keys, [0, 1, 2].map(|i| format!("{prefix}-{i}")));
    assert_log_holds_none_of(&a, &[TOKEN]);
    assert_log_holds_none_of(&b, &[TOKEN]);
}

#[test]
fn an_otlphttp_exporter_with_a_bearer_token_delivers_to_a_receiver_that_checks_it() {
    chain(
        "otlphttp",
        r#"{endpoint: "http://{B}", auth: {authenticator: bearertokenauth/to_b}}"#,
        "http",
    );
}

#[test]
fn an_otlp_exporter_with_a_bearer_token_delivers_to_a_receiver_that_checks_it() {
    chain(
        "otlp",
        r#"{endpoint: "{B}", tls: {insecure: true}, auth: {authenticator: bearertokenauth/to_b}}"#,
        "grpc",
    );
}

#[test]
fn an_exporter_without_the_token_is_refused_for_good_and_b_writes_nothing() {
    let b = Collector::start_with_env(B, &[("INGEST_TOKEN", TOKEN)]);
    let exporter = format!(r#"{{endpoint: "http://{}"}}"#, b.endpoint("http"));
    let a = Collector::start_with_env(&a_config("otlphttp", &exporter), &[("B_TOKEN", TOKEN)]);
    // A's client hears the refusal: B's 401 is permanent for the exporter.
    let refused = export_grpc(a.endpoint("grpc"), None).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("401"), "{}", refused.message());
    assert!(!b.path("audit.jsonl").exists() || written_keys(&b, 0).is_empty());
}

/// `auditcol send` (the OpenTelemetry Rust SDK underneath) takes its
/// credentials from the standard `OTEL_EXPORTER_OTLP_HEADERS`.
#[test]
fn auditcol_send_authenticates_with_otel_exporter_otlp_headers() {
    let dir = tempfile::tempdir().unwrap();
    let collector = start(dir.path(), &otlp_config("bearertokenauth/ingest"));
    let send = |protocol: &str, key: &str, headers: Option<&str>| {
        let endpoint = format!(
            "http://{}",
            collector.endpoint(if protocol == "grpc" { "grpc" } else { "http" })
        );
        let mut command = std::process::Command::new(auditcol_e2e::binary());
        command
            .args([
                "send",
                "--endpoint",
                &endpoint,
                "--protocol",
                protocol,
                "--timeout",
                "5s",
            ])
            .args(["--type", "flag", "--action", "created", "--payload"])
            .arg(json!({"key": key}).to_string())
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
            .env_remove("OTEL_EXPORTER_OTLP_LOGS_HEADERS");
        if let Some(headers) = headers {
            command.env("OTEL_EXPORTER_OTLP_HEADERS", headers);
        }
        command.output().unwrap()
    };
    // Values are URL-decoded: %20 is the space after the scheme.
    let headers = format!("authorization=Bearer%20{TOKEN}");
    for protocol in ["grpc", "http/protobuf"] {
        let refused = send(protocol, "send-refused", None);
        assert_eq!(refused.status.code(), Some(1), "{protocol}");
        let sent = send(protocol, &format!("send-{protocol}"), Some(&headers));
        assert!(
            sent.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
    }
    let mut keys = written_keys(&collector, 2);
    keys.sort();
    assert_eq!(keys, ["send-grpc", "send-http/protobuf"]);
    assert_log_holds_none_of(&collector, &[TOKEN]);
}
