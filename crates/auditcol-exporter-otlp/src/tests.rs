//! `otlp` against a real OTLP receiver on 127.0.0.1 (OS-chosen port) whose
//! pipeline answers what each test tells it to.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use auditcol_core::component::ComponentId;
use auditcol_core::config::parse_component_config;
use auditcol_core::exporterhelper::BatchSender;
use auditcol_core::{Component, LogBatch, LogsConsumer, PipelineError};
use auditcol_receiver_otlp::{OtlpReceiver, OtlpReceiverConfig};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use serde_json::json;
use tokio::time::Instant;

use super::*;

/// Records every batch and answers with the next of its answers (then Ok).
#[derive(Default)]
struct Scripted {
    batches: Mutex<Vec<LogBatch>>,
    answers: Mutex<Vec<Result<(), PipelineError>>>,
}

#[async_trait]
impl LogsConsumer for Scripted {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.batches.lock().unwrap().push(batch);
        let mut answers = self.answers.lock().unwrap();
        if answers.is_empty() {
            Ok(())
        } else {
            answers.remove(0)
        }
    }
}

/// An OTLP receiver (gRPC only) on 127.0.0.1:0 answering `answers` in turn.
async fn start_receiver(
    answers: Vec<Result<(), PipelineError>>,
) -> (Arc<OtlpReceiver>, Arc<Scripted>, String) {
    let config: OtlpReceiverConfig =
        parse_component_config(&json!({"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}))
            .unwrap();
    let consumer = Arc::new(Scripted {
        batches: Mutex::default(),
        answers: Mutex::new(answers),
    });
    let receiver = Arc::new(OtlpReceiver::new(
        ComponentId::new("otlp", None),
        config,
        consumer.clone(),
    ));
    receiver.start().await.unwrap();
    let addr = receiver.local_addrs()[0].1;
    (receiver, consumer, addr.to_string())
}

/// Audit events already stamped as a receiver would, so that the next
/// receiver adds nothing.
fn stamped_batch(n: usize) -> LogBatch {
    let mut batch = LogBatch::sample_audit(n);
    batch.prepare_ingest(1_714_557_700_000_000_000, "upstream");
    batch
}

/// The batch as the generated OTLP structs: equal when every field of every
/// record, resource and scope is (field order on the wire aside).
fn as_request(batch: &LogBatch) -> ExportLogsServiceRequest {
    prost::Message::decode(&batch.encode_protobuf()[..]).unwrap()
}

fn build(config: serde_json::Value) -> Arc<dyn Exporter> {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, Some("test")));
    OtlpExporterFactory.build(&ctx, &config).unwrap()
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[test]
fn build_reports_config_errors_with_their_path() {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None));
    let err = OtlpExporterFactory.build(&ctx, &json!({})).err().unwrap();
    assert_eq!(err.path, "endpoint");
}

#[tokio::test]
async fn records_reach_a_receiver_unchanged_with_and_without_gzip() {
    let (receiver, consumer, addr) = start_receiver(vec![]).await;
    for compression in ["gzip", "none"] {
        for sent in [stamped_batch(5), LogBatch::sample_varied()] {
            consumer.batches.lock().unwrap().clear();
            let exporter = build(json!({
                "endpoint": addr,
                "tls": {"insecure": true},
                "compression": compression,
            }));
            exporter.start().await.unwrap();
            exporter.consume(sent.clone()).await.unwrap();
            exporter.shutdown(far()).await;
            let received = consumer.batches.lock().unwrap().clone();
            assert_eq!(received.len(), 1, "{compression}");
            assert_eq!(
                as_request(&received[0]),
                as_request(&sent),
                "{compression}: records changed on the way"
            );
        }
    }
    receiver.shutdown(far()).await;
}

#[tokio::test]
async fn an_http_url_endpoint_is_plain_text() {
    let (receiver, consumer, addr) = start_receiver(vec![]).await;
    let exporter = build(json!({"endpoint": format!("http://{addr}")}));
    exporter.start().await.unwrap();
    exporter.consume(stamped_batch(1)).await.unwrap();
    exporter.shutdown(far()).await;
    assert_eq!(consumer.batches.lock().unwrap().len(), 1);
    receiver.shutdown(far()).await;
}

#[tokio::test]
async fn unavailable_with_retry_info_is_retried_after_the_wait_then_delivered() {
    let (receiver, consumer, addr) = start_receiver(vec![Err(PipelineError::Retryable {
        message: "queue full".into(),
        retry_after: Some(Duration::from_secs(1)),
    })])
    .await;
    let exporter = build(json!({
        "endpoint": addr,
        "tls": {"insecure": true},
        "retry_on_failure": {"initial_interval": "10ms", "randomization_factor": 0},
    }));
    exporter.start().await.unwrap();
    let started = std::time::Instant::now();
    exporter.consume(stamped_batch(2)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the RetryInfo delay was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(consumer.batches.lock().unwrap().len(), 2, "one retry");
    exporter.shutdown(far()).await;
    receiver.shutdown(far()).await;
}

#[tokio::test]
async fn retry_info_is_passed_to_the_helper() {
    let (receiver, _consumer, addr) = start_receiver(vec![Err(PipelineError::Retryable {
        message: "queue full".into(),
        retry_after: Some(Duration::from_secs(42)),
    })])
    .await;
    let config: OtlpExporterConfig =
        parse_component_config(&json!({"endpoint": addr, "tls": {"insecure": true}})).unwrap();
    let sender = OtlpGrpcSender::new("otlp/test", &config);
    sender.start().await.unwrap();
    let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
    assert!(
        err.message().contains("Unavailable: queue full"),
        "{}",
        err.message()
    );
    receiver.shutdown(far()).await;
}

#[tokio::test]
async fn a_rejection_is_a_permanent_failure_reported_upstream() {
    let (receiver, consumer, addr) =
        start_receiver(vec![Err(PipelineError::permanent("no such tenant"))]).await;
    let exporter = build(json!({
        "endpoint": addr,
        "tls": {"insecure": true},
        "retry_on_failure": {"initial_interval": "10ms"},
    }));
    exporter.start().await.unwrap();
    let err = exporter.consume(stamped_batch(1)).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.message().contains("InvalidArgument: no such tenant"),
        "{}",
        err.message()
    );
    assert_eq!(consumer.batches.lock().unwrap().len(), 1, "never retried");
    exporter.shutdown(far()).await;
    receiver.shutdown(far()).await;
}

#[tokio::test]
async fn an_unreachable_server_is_retryable_and_start_does_not_need_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let config: OtlpExporterConfig =
        parse_component_config(&json!({"endpoint": addr, "tls": {"insecure": true}})).unwrap();
    let sender = OtlpGrpcSender::new("otlp/test", &config);
    sender.start().await.unwrap();
    let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(err.message().contains(&addr), "{}", err.message());
}

#[tokio::test]
async fn a_ca_file_removed_after_build_fails_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = auditcol_testkit::pki::TestPki::generate(dir.path());
    let config: OtlpExporterConfig =
        parse_component_config(&json!({"endpoint": "127.0.0.1:1", "tls": {"ca_file": pki.ca}}))
            .unwrap();
    std::fs::remove_file(&pki.ca).unwrap();
    let err = OtlpGrpcSender::new("otlp/test", &config)
        .start()
        .await
        .unwrap_err();
    assert!(
        err.0.contains(&format!(
            "tls.ca_file: {}: file not found",
            pki.ca.display()
        )),
        "{err}"
    );
}

/// The exporter over TLS to auditcol's own OTLP receiver: gRPC over TLS
/// with ALPN h2 on both sides, and mutual TLS.
#[tokio::test]
async fn tls_and_mutual_tls_to_the_otlp_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let pki = auditcol_testkit::pki::TestPki::generate(dir.path());
    let config: OtlpReceiverConfig = parse_component_config(&json!({"protocols": {"grpc": {
        "endpoint": "127.0.0.1:0",
        "tls": {"cert_file": pki.server.cert, "key_file": pki.server.key, "client_ca_file": pki.ca},
    }}}))
    .unwrap();
    let consumer = Arc::new(Scripted::default());
    let receiver = OtlpReceiver::new(ComponentId::new("otlp", None), config, consumer.clone());
    receiver.start().await.unwrap();
    let addr = receiver.local_addrs()[0].1.to_string();
    let sender = |tls: serde_json::Value| {
        let config: OtlpExporterConfig =
            parse_component_config(&json!({"endpoint": addr, "tls": tls})).unwrap();
        OtlpGrpcSender::new("otlp/test", &config)
    };
    let member = sender(json!({
        "ca_file": pki.ca, "cert_file": pki.client.cert, "key_file": pki.client.key,
    }));
    member.start().await.unwrap();
    member.send_batch(&stamped_batch(2)).await.unwrap();
    assert_eq!(consumer.batches.lock().unwrap().len(), 1);

    let anonymous = sender(json!({"ca_file": pki.ca}));
    anonymous.start().await.unwrap();
    let err = anonymous.send_batch(&stamped_batch(1)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(
        consumer.batches.lock().unwrap().len(),
        1,
        "nothing got through"
    );
    receiver.shutdown(far()).await;
}

/// A hand-written OTLP/gRPC server: answers each call with the next of its
/// answers (then OK) and keeps the metadata it was sent.
mod scripted_server {
    use super::*;
    use auditcol_testkit::pki::{PemFiles, TestPki};
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
        LogsService, LogsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };
    use tonic::{Code, Request, Response, Status};

    type Answer = Result<ExportLogsServiceResponse, Status>;

    #[derive(Default, Clone)]
    struct Server {
        answers: Arc<Mutex<Vec<Answer>>>,
        metadata: Arc<Mutex<Vec<tonic::metadata::MetadataMap>>>,
    }

    #[tonic::async_trait]
    impl LogsService for Server {
        async fn export(
            &self,
            request: Request<ExportLogsServiceRequest>,
        ) -> Result<Response<ExportLogsServiceResponse>, Status> {
            self.metadata
                .lock()
                .unwrap()
                .push(request.metadata().clone());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(Response::new(ExportLogsServiceResponse::default()))
            } else {
                answers.remove(0).map(Response::new)
            }
        }
    }

    enum Tls<'a> {
        None,
        /// Server TLS with this certificate.
        Server(&'a PemFiles),
        /// Server TLS, and clients must show a certificate of this CA.
        Mutual(&'a PemFiles, &'a std::path::Path),
    }

    /// Starts a server on 127.0.0.1:0 and returns its address. TLS is
    /// tonic's own, so the exporter's is tested against another
    /// implementation than the receiver's.
    async fn start_server(server: Server, tls: Tls<'_>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = LogsServiceServer::new(server)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let mut builder = tonic::transport::Server::builder();
        let identity = |files: &PemFiles| {
            tonic::transport::Identity::from_pem(
                std::fs::read(&files.cert).unwrap(),
                std::fs::read(&files.key).unwrap(),
            )
        };
        match tls {
            Tls::None => {}
            Tls::Server(files) => {
                let config = tonic::transport::ServerTlsConfig::new().identity(identity(files));
                builder = builder.tls_config(config).unwrap();
            }
            Tls::Mutual(files, ca) => {
                let config = tonic::transport::ServerTlsConfig::new()
                    .identity(identity(files))
                    .client_ca_root(tonic::transport::Certificate::from_pem(
                        std::fs::read(ca).unwrap(),
                    ));
                builder = builder.tls_config(config).unwrap();
            }
        }
        tokio::spawn(
            builder
                .add_service(service)
                .serve_with_incoming(tokio_stream_of(listener)),
        );
        addr
    }

    async fn serve(answers: Vec<Answer>) -> (Server, OtlpGrpcSender) {
        let server = Server {
            answers: Arc::new(Mutex::new(answers)),
            ..Default::default()
        };
        let addr = start_server(server.clone(), Tls::None).await;
        let config: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": format!("http://{addr}"),
            "headers": {"authorization": "Bearer abc", "x-tenant": "t1"},
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &config);
        sender.start().await.unwrap();
        (server, sender)
    }

    #[tokio::test]
    async fn tls_with_the_ca_file_delivers_and_without_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let server = Server::default();
        let addr = start_server(server.clone(), Tls::Server(&pki.server)).await;
        let trusting: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": addr.to_string(),
            "tls": {"ca_file": pki.ca},
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &trusting);
        sender.start().await.unwrap();
        sender.send_batch(&stamped_batch(2)).await.unwrap();
        assert_eq!(server.metadata.lock().unwrap().len(), 1);

        let default_roots: OtlpExporterConfig =
            parse_component_config(&json!({"endpoint": addr.to_string()})).unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &default_roots);
        sender.start().await.unwrap();
        let err = sender.send_batch(&stamped_batch(2)).await.unwrap_err();
        assert!(!err.is_permanent(), "{err:?}");
        assert!(err.message().contains("certificate"), "{}", err.message());
        assert_eq!(
            server.metadata.lock().unwrap().len(),
            1,
            "nothing got through"
        );

        let plain: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": addr.to_string(),
            "tls": {"insecure": true},
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &plain);
        sender.start().await.unwrap();
        assert!(sender.send_batch(&stamped_batch(2)).await.is_err());
    }

    /// The listener as the stream of connections tonic serves.
    fn tokio_stream_of(
        listener: tokio::net::TcpListener,
    ) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
        futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| stream);
            Some((accepted, listener))
        })
    }

    #[tokio::test]
    async fn headers_are_sent_as_metadata() {
        let (server, sender) = serve(vec![]).await;
        sender.send_batch(&stamped_batch(1)).await.unwrap();
        let metadata = server.metadata.lock().unwrap()[0].clone();
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer abc");
        assert_eq!(metadata.get("x-tenant").unwrap(), "t1");
        assert_eq!(metadata.get("grpc-encoding").unwrap(), "gzip");
    }

    #[tokio::test]
    async fn partial_success_is_delivered_and_counted() {
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        };
        let (_server, sender) = serve(vec![Ok(partial.clone()), Ok(partial)]).await;
        sender.send_batch(&stamped_batch(3)).await.unwrap();
        sender.send_batch(&stamped_batch(3)).await.unwrap();
        assert_eq!(sender.rejected_records(), 4);
    }

    #[tokio::test]
    async fn resource_exhausted_without_retry_info_is_permanent() {
        let (_server, sender) = serve(vec![
            Err(Status::resource_exhausted("quota")),
            Err(Status::new(Code::Unauthenticated, "bad key")),
        ])
        .await;
        let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert!(
            err.message().contains("ResourceExhausted: quota"),
            "{}",
            err.message()
        );
        let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert!(
            err.message().contains("Unauthenticated: bad key"),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn server_name_override_trusts_a_certificate_issued_for_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let named = pki
            .authority
            .server(&["otlp.internal"])
            .write(dir.path(), "named");
        let server = Server::default();
        let addr = start_server(server.clone(), Tls::Server(&named)).await;
        let by_address: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": addr.to_string(),
            "tls": {"ca_file": pki.ca},
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &by_address);
        sender.start().await.unwrap();
        let err = sender.send_batch(&stamped_batch(1)).await.unwrap_err();
        assert!(
            err.message().contains("not valid for name"),
            "{}",
            err.message()
        );
        let overriding: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": addr.to_string(),
            "tls": {"ca_file": pki.ca, "server_name_override": "otlp.internal"},
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &overriding);
        sender.start().await.unwrap();
        sender.send_batch(&stamped_batch(1)).await.unwrap();
        assert_eq!(server.metadata.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn mutual_tls_needs_the_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let server = Server::default();
        let addr = start_server(server.clone(), Tls::Mutual(&pki.server, &pki.ca)).await;
        let with_cert: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": addr.to_string(),
            "tls": {
                "ca_file": pki.ca,
                "cert_file": pki.client.cert,
                "key_file": pki.client.key,
            },
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &with_cert);
        sender.start().await.unwrap();
        sender.send_batch(&stamped_batch(1)).await.unwrap();
        assert_eq!(server.metadata.lock().unwrap().len(), 1);

        let without: OtlpExporterConfig = parse_component_config(&json!({
            "endpoint": addr.to_string(),
            "tls": {"ca_file": pki.ca},
        }))
        .unwrap();
        let sender = OtlpGrpcSender::new("otlp/test", &without);
        sender.start().await.unwrap();
        assert!(sender.send_batch(&stamped_batch(1)).await.is_err());
        assert_eq!(
            server.metadata.lock().unwrap().len(),
            1,
            "nothing got through"
        );
    }
}

/// A host offering a bearer token and a Basic server (no client side).
fn auth_host() -> auditcol_core::component::Host {
    auditcol_extension_auth::test_host(
        &[
            (
                "bearertokenauth/backend",
                json!({"token": "exporter-test-token"}),
            ),
            (
                "basicauth/backend",
                json!({"htpasswd": {"inline": "u:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="}}),
            ),
        ],
        &[],
    )
    .unwrap()
}

#[tokio::test]
async fn auth_sends_the_token_as_metadata_and_a_receiver_checking_it_accepts() {
    let host = auth_host();
    let config: OtlpReceiverConfig = parse_component_config(&json!({"protocols": {"grpc": {
        "endpoint": "127.0.0.1:0", "auth": {"authenticator": "bearertokenauth/backend"},
    }}}))
    .unwrap();
    let consumer = Arc::new(Scripted::default());
    let receiver = Arc::new(
        OtlpReceiver::new(ComponentId::new("otlp", None), config, consumer.clone())
            .with_authenticators(&host)
            .unwrap(),
    );
    receiver.start().await.unwrap();
    let addr = receiver.local_addrs()[0].1;
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, Some("test"))).with_host(host);
    let with_auth = OtlpExporterFactory
        .build(
            &ctx,
            &json!({"endpoint": addr.to_string(), "tls": {"insecure": true},
                    "auth": {"authenticator": "bearertokenauth/backend"},
                    "headers": {"authorization": "Bearer stale-token"}}),
        )
        .unwrap();
    with_auth.start().await.unwrap();
    with_auth.consume(stamped_batch(2)).await.unwrap();
    assert_eq!(consumer.batches.lock().unwrap().len(), 1);

    // Without it, UNAUTHENTICATED: permanent per the OTLP specification.
    let without = build(json!({"endpoint": addr.to_string(), "tls": {"insecure": true}}));
    without.start().await.unwrap();
    let err = without.consume(stamped_batch(1)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Permanent { .. }), "{err}");
    assert!(err.to_string().contains("no authorization header"), "{err}");
    assert_eq!(consumer.batches.lock().unwrap().len(), 1);
    assert_eq!(receiver.unauthenticated_requests(), 1);
    with_auth.shutdown(far()).await;
    without.shutdown(far()).await;
    receiver.shutdown(far()).await;
}

#[test]
fn an_authenticator_without_a_client_side_is_a_config_error_at_its_key() {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None)).with_host(auth_host());
    let err = OtlpExporterFactory
        .build(
            &ctx,
            &json!({"endpoint": "h:4317", "auth": {"authenticator": "basicauth/backend"}}),
        )
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with(
            "auth.authenticator: extension `basicauth/backend` is not a client authenticator"
        ),
        "{err}"
    );
}
