//! TLS and mutual TLS end to end, with certificates made for each test
//! (rcgen): the official OpenTelemetry Python SDK sends over gRPC TLS and
//! HTTPS, a Rust client (reqwest) posts to the webhook receiver over TLS,
//! certificate files are rotated under a running collector, `validate`
//! names a bad file, and one collector exports to another over TLS with
//! the otlp, otlphttp and webhook exporters.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditcol_e2e::{
    Collector, TIMEOUT, binary, file_lines, flipt_event, http_post, run_python_sdk,
};
use auditcol_testkit::pki::{PemFiles, TestCa, TestPki};
use serde_json::{Value, json};
use tokio_rustls::rustls;

/// `tls: {...}` for a listener: the certificate, its key, and `extra` keys.
fn tls(server: &PemFiles, extra: &str) -> String {
    format!(
        r#"tls: {{cert_file: "{}", key_file: "{}"{extra}}}"#,
        server.cert.display(),
        server.key.display()
    )
}

/// OTLP gRPC and HTTP with `tls` (the same on both) → Flipt JSON lines.
fn otlp_config(tls: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0", {tls}}}
      http: {{endpoint: "127.0.0.1:0", {tls}}}
exporters:
  file: {{path: "{{DIR}}/audit.jsonl", format: json}}
service:
  pipelines:
    logs: {{receivers: [otlp], exporters: [file]}}
"#
    )
}

fn event(key: &str) -> Value {
    json!([flipt_event("flag", "updated", key, "2024-05-01T10:00:00Z")])
}

/// The Python SDK's run: (exit status success, its summary).
fn python(protocol: &str, endpoint: SocketAddr, key: &str, args: &[&str]) -> (bool, Value) {
    let out = run_python_sdk(protocol, endpoint, &event(key), args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "no summary from the Python client: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), summary)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The lines of `file`, or none when it does not exist yet.
fn lines_now(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_python_sdk_sends_over_grpc_tls_and_https_and_the_events_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let collector = Collector::start(&otlp_config(&tls(&pki.server, "")));
    for (n, protocol) in ["grpc", "http"].into_iter().enumerate() {
        let key = format!("over-{protocol}-tls");
        let (ok, summary) = python(
            protocol,
            collector.endpoint(protocol),
            &key,
            &["--ca-file", path(&pki.ca)],
        );
        assert!(ok, "{protocol}: {summary}\n{}", collector.log());
        assert_eq!(summary, json!({"exported": 1, "failed": 0}), "{protocol}");
        let lines = file_lines(&collector.path("audit.jsonl"), n + 1);
        assert!(
            lines[n].contains(&format!(r#""key":"{key}""#)),
            "{}",
            lines[n]
        );
    }
}

#[test]
fn a_client_that_does_not_trust_the_ca_fails_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let other_ca = TestCa::new("another CA").write(&dir.path().join("other-ca.pem"));
    let collector = Collector::start(&otlp_config(&tls(&pki.server, "")));
    for protocol in ["grpc", "http"] {
        let (ok, summary) = python(
            protocol,
            collector.endpoint(protocol),
            "untrusted",
            &["--ca-file", path(&other_ca), "--timeout", "3"],
        );
        assert!(!ok, "{protocol}: {summary}");
        assert_eq!(summary, json!({"exported": 0, "failed": 1}), "{protocol}");
    }
    collector.wait_for_log("TLS handshake failed");
    assert_eq!(
        lines_now(&collector.path("audit.jsonl")),
        Vec::<String>::new()
    );
}

#[test]
fn mutual_tls_refuses_no_certificate_and_another_cas_and_accepts_the_client_cas() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let stranger = TestCa::new("another CA")
        .client("stranger")
        .write(dir.path(), "stranger");
    let mutual = tls(
        &pki.server,
        &format!(r#", client_ca_file: "{}""#, pki.ca.display()),
    );
    let collector = Collector::start(&otlp_config(&mutual));
    collector.wait_for_log(r#"tls="mutual""#);
    let ca = path(&pki.ca);
    for (n, protocol) in ["grpc", "http"].into_iter().enumerate() {
        let endpoint = collector.endpoint(protocol);
        let (ok, summary) = python(
            protocol,
            endpoint,
            "anonymous",
            &["--ca-file", ca, "--timeout", "3"],
        );
        assert!(!ok, "{protocol} without a client certificate: {summary}");
        let foreign = [
            "--ca-file",
            ca,
            "--client-cert",
            path(&stranger.cert),
            "--client-key",
            path(&stranger.key),
            "--timeout",
            "3",
        ];
        let (ok, summary) = python(protocol, endpoint, "stranger", &foreign);
        assert!(!ok, "{protocol} with another CA's certificate: {summary}");
        let member = [
            "--ca-file",
            ca,
            "--client-cert",
            path(&pki.client.cert),
            "--client-key",
            path(&pki.client.key),
        ];
        let (ok, summary) = python(protocol, endpoint, &format!("member-{protocol}"), &member);
        assert!(ok, "{protocol} with the client CA's certificate: {summary}");
        let lines = file_lines(&collector.path("audit.jsonl"), n + 1);
        assert!(
            lines[n].contains(&format!("member-{protocol}")),
            "{lines:?}"
        );
    }
    let lines = lines_now(&collector.path("audit.jsonl"));
    assert_eq!(lines.len(), 2, "only the members' events: {lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_receiver_serves_tls_and_mutual_tls_to_a_rust_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let config = format!(
        r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    {}
exporters:
  file: {{path: "{{DIR}}/audit.jsonl", format: json}}
service:
  pipelines:
    logs: {{receivers: [webhook], exporters: [file]}}
"#,
        tls(
            &pki.server,
            &format!(r#", client_ca_file: "{}""#, pki.ca.display())
        )
    );
    let collector = Collector::start(&config);
    let url = format!("https://{}/", collector.component_endpoint("webhook"));
    let body = flipt_event(
        "segment",
        "created",
        "over-webhook-tls",
        "2024-05-01T10:00:00Z",
    )
    .to_string();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let identity = |files: &PemFiles| {
        let mut pem = std::fs::read(&files.cert).unwrap();
        pem.extend(std::fs::read(&files.key).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    };
    let post = |client: reqwest::Client| {
        let (url, body) = (url.clone(), body.clone());
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
        }
    };

    let untrusting = reqwest::Client::builder()
        .identity(identity(&pki.client))
        .build()
        .unwrap();
    let err = post(untrusting).await.unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    let anonymous = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    assert!(post(anonymous).await.is_err(), "no client certificate");

    let member = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .identity(identity(&pki.client))
        .build()
        .unwrap();
    let answer = post(member).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), r#"{"accepted":1}"#);
    let lines = file_lines(&collector.path("audit.jsonl"), 1);
    assert!(lines[0].contains("over-webhook-tls"), "{lines:?}");

    // Plain HTTP to a TLS port gets no HTTP answer.
    use std::io::{Read, Write};
    let mut plain = TcpStream::connect(collector.component_endpoint("webhook")).unwrap();
    plain.set_read_timeout(Some(TIMEOUT)).unwrap();
    plain
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "answered in plain text");
}

/// The certificate a TLS server at `addr` presents, trusting `ca`.
fn presented_certificate(addr: SocketAddr, ca: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), "127.0.0.1".try_into().unwrap()).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp).unwrap();
    }
    connection.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn rotated_certificate_files_are_served_after_reload_interval_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let collector = Collector::start(&otlp_config(&tls(
        &pki.server,
        r#", reload_interval: 200ms"#,
    )));
    let addr = collector.endpoint("http");
    assert_eq!(presented_certificate(addr, &pki.ca), pki.server_der);

    // Half a rotation: the new certificate, the old key. The collector
    // says what is wrong with which file and keeps serving the old pair.
    let rotated = pki.authority.server(&["127.0.0.1"]);
    std::fs::write(&pki.server.cert, &rotated.cert_pem).unwrap();
    collector.wait_for_log("TLS files changed but cannot be loaded");
    let warning = collector
        .log()
        .lines()
        .find(|l| l.contains("TLS files changed but cannot be loaded"))
        .unwrap()
        .to_owned();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&format!(
            "tls.key_file: {}: does not match the certificate in {}",
            pki.server.key.display(),
            pki.server.cert.display()
        )),
        "{warning}"
    );
    assert_eq!(presented_certificate(addr, &pki.ca), pki.server_der);

    // The key follows: the new pair is served, by the same process.
    std::fs::write(&pki.server.key, &rotated.key_pem).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while presented_certificate(addr, &pki.ca) != rotated.der {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served:\n{}",
            collector.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    collector.wait_for_log("TLS files changed: new connections get the new certificate");
    let (ok, summary) = python(
        "http",
        addr,
        "after-rotation",
        &["--ca-file", path(&pki.ca)],
    );
    assert!(ok, "{summary}");
    assert_eq!(collector.log().matches("auditcol is running").count(), 1);
}

fn validate(config: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config.replace("{DIR}", path(dir.path()))).unwrap();
    let out = Command::new(binary())
        .args(["validate", "--config", path(&file)])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_names_the_bad_file_and_what_is_wrong_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let missing = PemFiles {
        cert: dir.path().join("missing.pem"),
        key: pki.server.key.clone(),
    };
    let (code, stdout, stderr) = validate(&otlp_config(&tls(&missing, "")));
    assert_eq!((code, stdout.as_str()), (Some(1), ""), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "error: receivers::otlp: protocols.grpc.tls.cert_file: {}: file not found",
            missing.cert.display()
        )
    );

    let mismatched = PemFiles {
        cert: pki.server.cert.clone(),
        key: pki.client.key.clone(),
    };
    let (code, _, stderr) = validate(&otlp_config(&tls(&mismatched, "")));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "receivers::otlp: protocols.grpc.tls.key_file: {}: does not match the certificate in {}",
            pki.client.key.display(),
            pki.server.cert.display()
        )),
        "{stderr}"
    );

    let (code, _, stderr) = validate(&otlp_config(&tls(
        &pki.server,
        &format!(r#", client_ca_file: "{}""#, pki.server.key.display()),
    )));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "protocols.grpc.tls.client_ca_file: {}: no certificate in it",
            pki.server.key.display()
        )),
        "{stderr}"
    );

    let (code, stdout, stderr) = validate(&otlp_config(&tls(&pki.server, "")));
    assert_eq!((code, stdout.as_str()), (Some(0), "OK\n"), "{stderr}");
}

#[test]
fn exporters_reach_a_tls_collector_by_its_certificates_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    // The gateway's certificate names `gateway.internal`, not the address
    // the exporters connect to: they trust it with server_name_override.
    let named = pki
        .authority
        .server(&["gateway.internal"])
        .write(dir.path(), "gateway");
    let gateway_tls = tls(&named, "");
    let gateway = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0", {gateway_tls}}}
      http: {{endpoint: "127.0.0.1:0", {gateway_tls}}}
  webhook:
    endpoint: "127.0.0.1:0"
    {gateway_tls}
exporters:
  file: {{path: "{{DIR}}/audit.jsonl", format: json}}
service:
  pipelines:
    logs: {{receivers: [otlp, webhook], exporters: [file]}}
"#
    ));
    // Two receivers speak `http`: find the OTLP one by its component.
    let otlp_http = gateway
        .log()
        .lines()
        .find(|l| l.contains("listening") && l.contains("component=otlp protocol=\"http\""))
        .and_then(|l| l.split("endpoint=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the otlp http listener")
        .to_owned();
    let client_tls = format!(
        r#"tls: {{ca_file: "{}", server_name_override: gateway.internal}}"#,
        pki.ca.display()
    );
    let agent = Collector::start(&format!(
        r#"
receivers:
  webhook: {{endpoint: "127.0.0.1:0"}}
exporters:
  otlp:
    endpoint: "{grpc}"
    {client_tls}
  otlphttp:
    endpoint: "https://{http}"
    {client_tls}
  webhook:
    endpoint: "https://{webhook}/"
    {client_tls}
service:
  pipelines:
    logs: {{receivers: [webhook], exporters: [otlp, otlphttp, webhook]}}
"#,
        grpc = gateway.endpoint("grpc"),
        http = otlp_http,
        webhook = gateway.component_endpoint("webhook"),
    ));
    let body = flipt_event("flag", "deleted", "across-tls", "2024-05-01T10:00:00Z").to_string();
    let answer = http_post(
        agent.component_endpoint("webhook"),
        "/",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), agent.log());
    let lines = file_lines(&gateway.path("audit.jsonl"), 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("across-tls")), "{lines:?}");

    // Without the override the name does not match: refused, not delivered.
    let strict = Collector::start(&format!(
        r#"
receivers:
  webhook: {{endpoint: "127.0.0.1:0"}}
exporters:
  otlphttp:
    endpoint: "https://{http}"
    tls: {{ca_file: "{ca}"}}
    retry_on_failure: {{enabled: false}}
service:
  pipelines:
    logs: {{receivers: [webhook], exporters: [otlphttp]}}
"#,
        http = otlp_http,
        ca = pki.ca.display(),
    ));
    let answer = http_post(
        strict.component_endpoint("webhook"),
        "/",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(
        answer.text().contains("not valid for name"),
        "{}",
        answer.text()
    );
    assert_eq!(lines_now(&gateway.path("audit.jsonl")).len(), 3);
}
