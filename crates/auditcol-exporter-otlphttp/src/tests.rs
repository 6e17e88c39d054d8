//! `otlphttp` against a real OTLP receiver and against hand-written servers,
//! all on 127.0.0.1 with OS-chosen ports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use auditcol_core::component::ComponentId;
use auditcol_core::config::parse_component_config;
use auditcol_core::exporterhelper::BatchSender;
use auditcol_core::{Component, LogBatch, LogsConsumer, PipelineError};
use auditcol_receiver_otlp::{OtlpReceiver, OtlpReceiverConfig};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use super::*;

/// Records every batch it is given.
#[derive(Default)]
struct Recording(Mutex<Vec<LogBatch>>);

#[async_trait]
impl LogsConsumer for Recording {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}

/// An OTLP receiver (HTTP only) on 127.0.0.1:0 and what it received.
async fn start_receiver() -> (Arc<OtlpReceiver>, Arc<Recording>, String) {
    start_receiver_with(None).await
}

/// An OTLP receiver (HTTP only, over TLS with `tls` as given) on
/// 127.0.0.1:0, what it received and its URL (`http://` or `https://`).
async fn start_receiver_with(
    tls: Option<serde_json::Value>,
) -> (Arc<OtlpReceiver>, Arc<Recording>, String) {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut http = json!({"endpoint": "127.0.0.1:0"});
    if let Some(tls) = tls {
        http["tls"] = tls;
    }
    let config: OtlpReceiverConfig =
        parse_component_config(&json!({"protocols": {"http": http}})).unwrap();
    let recording = Arc::new(Recording::default());
    let receiver = Arc::new(OtlpReceiver::new(
        ComponentId::new("otlp", None),
        config,
        recording.clone(),
    ));
    receiver.start().await.unwrap();
    let addr = receiver.local_addrs()[0].1;
    (receiver, recording, format!("{scheme}://{addr}"))
}

/// Audit events already stamped as a receiver would (observed time,
/// `event_name`, `audit.id`, `audit.source`), so that the next receiver adds
/// nothing and what arrives must equal what left, byte for byte.
fn stamped_batch(n: usize) -> LogBatch {
    let mut batch = LogBatch::sample_audit(n);
    batch.prepare_ingest(1_714_557_700_000_000_000, "upstream");
    batch
}

/// The batch as the generated OTLP structs: equal when every field of every
/// record, resource and scope is (field order on the wire aside).
pub(crate) fn as_request(
    batch: &LogBatch,
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    prost::Message::decode(&batch.encode_protobuf()[..]).unwrap()
}

fn build(config: serde_json::Value) -> Arc<dyn Exporter> {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, Some("test")));
    OtlpHttpExporterFactory.build(&ctx, &config).unwrap()
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[test]
fn build_reports_config_errors_with_their_path() {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None));
    let err = OtlpHttpExporterFactory
        .build(&ctx, &json!({"endpoint": "localhost:4318"}))
        .err()
        .unwrap();
    assert_eq!(err.path, "endpoint");
}

#[tokio::test]
async fn records_reach_a_receiver_unchanged_in_every_encoding_and_compression() {
    let (receiver, recording, url) = start_receiver().await;
    for encoding in ["proto", "json"] {
        for compression in ["gzip", "none"] {
            recording.0.lock().unwrap().clear();
            let exporter = build(json!({
                "endpoint": url,
                "encoding": encoding,
                "compression": compression,
            }));
            exporter.start().await.unwrap();
            let sent = stamped_batch(5);
            exporter.consume(sent.clone()).await.unwrap();
            exporter.shutdown(far()).await;
            let received = recording.0.lock().unwrap().clone();
            assert_eq!(received.len(), 1, "{encoding}/{compression}");
            assert_eq!(received[0].len(), 5);
            assert_eq!(
                as_request(&received[0]),
                as_request(&sent),
                "{encoding}/{compression}: records changed on the way"
            );
        }
    }
    receiver.shutdown(far()).await;
}

#[tokio::test]
async fn every_field_of_every_record_passes_through() {
    let (receiver, recording, url) = start_receiver().await;
    for encoding in ["proto", "json"] {
        recording.0.lock().unwrap().clear();
        let exporter = build(json!({"endpoint": url, "encoding": encoding}));
        exporter.start().await.unwrap();
        let sent = LogBatch::sample_varied();
        exporter.consume(sent.clone()).await.unwrap();
        exporter.shutdown(far()).await;
        let received = recording.0.lock().unwrap()[0].clone();
        assert_eq!(
            as_request(&received),
            as_request(&sent),
            "{encoding}: records changed on the way"
        );
        let record = received.records().next().unwrap();
        assert_eq!(record.event_name(), "audit.flag.created");
        assert_eq!(
            record.attribute("audit.actor.email"),
            Some("dev@example.com")
        );
        assert_eq!(record.resource_attribute("host.name"), Some("h1"));
        assert_eq!(record.scope_name(), "flipt.audit");
        assert_eq!(record.body_json(), json!({"key": "flipt", "n": 3}));
    }
    receiver.shutdown(far()).await;
}

/// A server that answers each request with the next of `answers` (the last
/// one for ever) and counts requests.
struct Scripted {
    url: String,
    requests: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
}

type Answer = (StatusCode, Vec<(&'static str, &'static str)>, &'static [u8]);

async fn scripted(answers: Vec<Answer>) -> Scripted {
    let requests = Arc::new(AtomicUsize::new(0));
    let headers = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (requests.clone(), headers.clone());
    let answers = Arc::new(answers);
    let app = axum::Router::new().route(
        "/v1/logs",
        axum::routing::post(move |request_headers: HeaderMap| {
            let answers = answers.clone();
            let n = count.fetch_add(1, Ordering::SeqCst);
            seen.lock().unwrap().push(request_headers);
            async move {
                let (status, headers, body) = answers[n.min(answers.len() - 1)].clone();
                let mut map = HeaderMap::new();
                for (k, v) in headers {
                    map.insert(k, v.parse().unwrap());
                }
                (status, map, body.to_vec())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Scripted {
        url,
        requests,
        headers,
    }
}

fn sender(config: serde_json::Value) -> OtlpHttpSender {
    let config: OtlpHttpExporterConfig = parse_component_config(&config).unwrap();
    OtlpHttpSender::new("otlphttp/test", &config)
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_after_the_wait_then_delivered() {
    let server = scripted(vec![
        (
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("retry-after", "1")],
            b"busy",
        ),
        (StatusCode::OK, vec![], b""),
    ])
    .await;
    let exporter = build(json!({
        "endpoint": server.url,
        "retry_on_failure": {"initial_interval": "10ms", "randomization_factor": 0},
    }));
    exporter.start().await.unwrap();
    let started = std::time::Instant::now();
    exporter.consume(stamped_batch(2)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    exporter.shutdown(far()).await;
}

#[tokio::test]
async fn retry_after_is_passed_to_the_helper() {
    let server = scripted(vec![(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "42")],
        b"slow down",
    )])
    .await;
    let sender = sender(json!({"endpoint": server.url}));
    sender.start().await.unwrap();
    let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
    assert!(!err.is_permanent());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
    assert!(err.message().contains("HTTP 429: slow down"), "{err:?}");
}

#[tokio::test]
async fn a_400_is_a_permanent_failure_reported_upstream() {
    let server = scripted(vec![(
        StatusCode::BAD_REQUEST,
        vec![("content-type", "application/json")],
        br#"{"code":3,"message":"record 0 has no audit.action"}"#,
    )])
    .await;
    let exporter = build(json!({
        "endpoint": server.url,
        "retry_on_failure": {"initial_interval": "10ms"},
    }));
    exporter.start().await.unwrap();
    let err = exporter.consume(stamped_batch(1)).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.message()
            .contains("HTTP 400: record 0 has no audit.action"),
        "{}",
        err.message()
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "never retried");
    exporter.shutdown(far()).await;
}

#[tokio::test]
async fn an_unreachable_server_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let sender = sender(json!({"endpoint": url}));
    sender.start().await.unwrap();
    let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(err.message().contains(&url), "{}", err.message());
}

#[tokio::test]
async fn partial_success_is_delivered_and_counted() {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };
    let body = prost::Message::encode_to_vec(&ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 2,
            error_message: "too old".into(),
        }),
    });
    let server = scripted(vec![(
        StatusCode::OK,
        vec![("content-type", "application/x-protobuf")],
        body.leak(),
    )])
    .await;
    let sender = sender(json!({"endpoint": server.url}));
    sender.start().await.unwrap();
    sender.send_batch(&stamped_batch(3)).await.unwrap();
    sender.send_batch(&stamped_batch(3)).await.unwrap();
    assert_eq!(sender.rejected_records(), 4);
}

#[tokio::test]
async fn headers_content_type_and_encoding_are_sent() {
    let server = scripted(vec![(StatusCode::OK, vec![], b"")]).await;
    let sender = sender(json!({
        "endpoint": server.url,
        "encoding": "json",
        "headers": {"authorization": "Bearer abc", "x-tenant": "t1"},
    }));
    sender.start().await.unwrap();
    sender.send_batch(&stamped_batch(1)).await.unwrap();
    let headers = server.headers.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], "Bearer abc");
    assert_eq!(headers["x-tenant"], "t1");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["content-encoding"], "gzip");
}

// ------------------------------------------------------------------ TLS

use auditcol_testkit::pki::{TestCa, TestPki};

async fn start_tls_receiver(tls: serde_json::Value) -> (Arc<OtlpReceiver>, Arc<Recording>, String) {
    start_receiver_with(Some(tls)).await
}

#[test]
fn tls_files_are_checked_at_build_and_named() {
    let err = parse_component_config::<OtlpHttpExporterConfig>(&json!({
        "endpoint": "https://127.0.0.1:1",
        "tls": {"ca_file": "/nonexistent/ca.pem"},
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tls.ca_file: /nonexistent/ca.pem: file not found"
    );
    let err = parse_component_config::<OtlpHttpExporterConfig>(&json!({
        "endpoint": "http://127.0.0.1:1",
        "logs_endpoint": "https://127.0.0.1:1/v1/logs",
        "tls": {"insecure": true},
    }))
    .unwrap_err();
    assert_eq!(err.path, "tls.insecure");
    let err = parse_component_config::<OtlpHttpExporterConfig>(&json!({
        "endpoint": "https://127.0.0.1:1",
        "logs_endpoint": "http://127.0.0.1:1/v1/logs",
        "tls": {"insecure_skip_verify": true},
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tls.insecure_skip_verify: is unused: `logs_endpoint` is an http:// URL (plain text); write https:// for TLS"
    );
}

#[tokio::test]
async fn https_with_the_ca_file_delivers_and_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let (_receiver, recording, url) =
        start_tls_receiver(json!({"cert_file": pki.server.cert, "key_file": pki.server.key})).await;
    let trusting = sender(json!({"endpoint": url, "tls": {"ca_file": pki.ca}}));
    trusting.start().await.unwrap();
    trusting.send_batch(&stamped_batch(2)).await.unwrap();
    assert_eq!(recording.0.lock().unwrap().len(), 1);

    let default_roots = sender(json!({"endpoint": url}));
    default_roots.start().await.unwrap();
    let err = default_roots
        .send_batch(&stamped_batch(2))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(err.message().contains("certificate"), "{}", err.message());
    assert_eq!(recording.0.lock().unwrap().len(), 1, "nothing got through");
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_of_the_receivers_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let (_receiver, recording, url) = start_tls_receiver(json!({
        "cert_file": pki.server.cert, "key_file": pki.server.key, "client_ca_file": pki.ca,
    }))
    .await;
    let with_cert = sender(json!({
        "endpoint": url,
        "tls": {"ca_file": pki.ca, "cert_file": pki.client.cert, "key_file": pki.client.key},
    }));
    with_cert.start().await.unwrap();
    with_cert.send_batch(&stamped_batch(1)).await.unwrap();
    assert_eq!(recording.0.lock().unwrap().len(), 1);

    let without = sender(json!({"endpoint": url, "tls": {"ca_file": pki.ca}}));
    without.start().await.unwrap();
    assert!(without.send_batch(&stamped_batch(1)).await.is_err());
    let stranger = TestCa::new("another CA")
        .client("stranger")
        .write(dir.path(), "stranger");
    let foreign = sender(json!({
        "endpoint": url,
        "tls": {"ca_file": pki.ca, "cert_file": stranger.cert, "key_file": stranger.key},
    }));
    foreign.start().await.unwrap();
    assert!(foreign.send_batch(&stamped_batch(1)).await.is_err());
    assert_eq!(recording.0.lock().unwrap().len(), 1, "nothing got through");
}

#[tokio::test]
async fn server_name_override_trusts_a_certificate_issued_for_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let named = pki
        .authority
        .server(&["otlp.internal"])
        .write(dir.path(), "named");
    let (_receiver, recording, url) =
        start_tls_receiver(json!({"cert_file": named.cert, "key_file": named.key})).await;
    let by_address = sender(json!({"endpoint": url, "tls": {"ca_file": pki.ca}}));
    by_address.start().await.unwrap();
    let err = by_address.send_batch(&stamped_batch(1)).await.unwrap_err();
    assert!(
        err.message().contains("not valid for name"),
        "{}",
        err.message()
    );
    let overriding = sender(json!({
        "endpoint": url,
        "tls": {"ca_file": pki.ca, "server_name_override": "otlp.internal"},
    }));
    overriding.start().await.unwrap();
    overriding.send_batch(&stamped_batch(1)).await.unwrap();
    assert_eq!(recording.0.lock().unwrap().len(), 1);
}

/// A host offering a bearer token and Basic client credentials.
fn auth_host() -> auditcol_core::component::Host {
    auditcol_extension_auth::test_host(
        &[
            (
                "bearertokenauth/backend",
                json!({"token": "exporter-test-token"}),
            ),
            (
                "basicauth/backend",
                json!({"client_auth": {"username": "auditcol", "password": "pw"}}),
            ),
        ],
        &[],
    )
    .unwrap()
}

#[tokio::test]
async fn auth_adds_the_authenticators_header_over_a_configured_one() {
    let server = scripted(vec![(StatusCode::OK, vec![], b"")]).await;
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, Some("test"))).with_host(auth_host());
    for (authenticator, expected) in [
        ("bearertokenauth/backend", "Bearer exporter-test-token"),
        // base64 of auditcol:pw
        ("basicauth/backend", "Basic YXVkaXRjb2w6cHc="),
    ] {
        let exporter = OtlpHttpExporterFactory
            .build(
                &ctx,
                &json!({"endpoint": server.url, "auth": {"authenticator": authenticator},
                        "headers": {"authorization": "Bearer stale", "x-tenant": "t1"}}),
            )
            .unwrap();
        exporter.start().await.unwrap();
        exporter.consume(stamped_batch(1)).await.unwrap();
        exporter.shutdown(far()).await;
        let headers = server.headers.lock().unwrap().pop().unwrap();
        assert_eq!(headers.get_all("authorization").iter().count(), 1);
        assert_eq!(headers["authorization"], expected);
        assert_eq!(headers["x-tenant"], "t1");
    }
}

#[test]
fn an_undefined_authenticator_is_a_config_error_at_its_key() {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None)).with_host(auth_host());
    let err = OtlpHttpExporterFactory
        .build(
            &ctx,
            &json!({"endpoint": "http://h", "auth": {"authenticator": "bearertokenauth/other"}}),
        )
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "auth.authenticator: extension `bearertokenauth/other` is not defined in the `extensions` section"
    );
}
