//! Admission by the memory limiters of the pipelines fed: refusals before
//! anything is read, reservations held until the pipeline answered.

use std::time::Duration;

use ::http::{Method, StatusCode};
use auditcol_core::batch::Chunks;
use auditcol_core::memorylimiter::{Admission, Limits, MemoryLimiter};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use tonic::Code;

use super::*;
use crate::ingest::{RETRY_INFO_TYPE_URL, RetryInfo, RpcStatus};

const MIB: u64 = 1 << 20;

/// A receiver on both protocols whose pipeline has `limiter`.
async fn start_limited(limiter: &MemoryLimiter) -> Running {
    let config: OtlpReceiverConfig = parse_component_config(&json!({"protocols": {
        "grpc": {"endpoint": "127.0.0.1:0"},
        "http": {"endpoint": "127.0.0.1:0"},
    }}))
    .unwrap();
    let consumer = TestConsumer::new();
    let receiver = Arc::new(
        OtlpReceiver::new(ComponentId::new("otlp", None), config, consumer.clone())
            .with_admission(Admission::new(vec![limiter.clone()])),
    );
    receiver.start().await.unwrap();
    Running { receiver, consumer }
}

/// Limits of 100 MiB (soft 80 MiB), the process measured at `measure`.
fn limiter(measure: fn() -> Option<u64>) -> MemoryLimiter {
    MemoryLimiter::with_measure(
        Limits {
            hard: 100 * MIB,
            soft: 80 * MIB,
        },
        Duration::from_secs(3600),
        measure,
    )
}

fn request(n: usize) -> ExportLogsServiceRequest {
    prost::Message::decode(LogBatch::sample_audit(n).encode_protobuf().as_slice()).unwrap()
}

async fn export(running: &Running, request: ExportLogsServiceRequest) -> Result<(), tonic::Status> {
    let mut client = LogsServiceClient::connect(running.grpc_url())
        .await
        .unwrap();
    client.export(request).await.map(|_| ())
}

#[tokio::test]
async fn over_the_soft_limit_grpc_requests_are_unavailable_with_retry_info() {
    let limiter = limiter(|| Some(90 * MIB));
    let running = start_limited(&limiter).await;
    let refused = export(&running, request(1)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("memory limit"), "{refused:?}");
    let details: RpcStatus = prost::Message::decode(refused.details()).unwrap();
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    let info: RetryInfo = prost::Message::decode(&details.details[0].value[..]).unwrap();
    assert_eq!(info.retry_delay.unwrap().seconds, 1);
    assert_eq!(running.consumer.records(), 0);
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test]
async fn over_the_soft_limit_http_requests_are_503_with_retry_after() {
    let limiter = limiter(|| Some(90 * MIB));
    let running = start_limited(&limiter).await;
    let reply = auditcol_testkit::send(
        running.addr("http"),
        Method::POST,
        "/v1/logs",
        &[("content-type", "application/x-protobuf")],
        LogBatch::sample_audit(1).encode_protobuf(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(running.consumer.records(), 0);
}

#[tokio::test]
async fn a_request_holds_its_bytes_and_decoded_cost_until_the_pipeline_answers() {
    let limiter = limiter(|| Some(0));
    let running = start_limited(&limiter).await;
    let body = LogBatch::sample_audit(100).encode_protobuf();
    // The message with its gRPC prefix: its frames are kept, not joined.
    let message = body.len() as u64 + 5;
    let decoded = LogBatch::decode_cost(&Chunks::from(body.clone())) as u64;
    let held = running.consumer.hold.lock().await;
    let url = running.grpc_url();
    let request = request(100);
    let sent = tokio::spawn(async move {
        let mut client = LogsServiceClient::connect(url).await.unwrap();
        client.export(request).await.map(|_| ())
    });
    running.consumer.entered.notified().await;
    let in_flight = limiter.in_flight();
    assert!(
        in_flight == message + decoded,
        "{in_flight}: message {message}, decoded {decoded}"
    );
    drop(held);
    sent.await.unwrap().unwrap();
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(running.consumer.records(), 100);
}

#[tokio::test]
async fn a_request_whose_decoded_cost_would_pass_the_hard_limit_is_refused() {
    fn fifteen_mib() -> Option<u64> {
        Some(15 * MIB)
    }
    // 5 MiB left under the hard limit.
    let limiter = MemoryLimiter::with_measure(
        Limits {
            hard: 20 * MIB,
            soft: 19 * MIB,
        },
        Duration::from_secs(3600),
        fifteen_mib,
    );
    let running = start_limited(&limiter).await;
    let n = 10_000;
    let body = LogBatch::sample_audit(n).encode_protobuf();
    assert!(
        body.len() < 4 << 20 && body.len() + LogBatch::decode_cost(&Chunks::from(body)) > 5 << 20
    );
    let refused = export(&running, request(n)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!((running.consumer.records(), limiter.in_flight()), (0, 0));
    // A small one still fits.
    export(&running, request(10)).await.unwrap();
    assert_eq!(running.consumer.records(), 10);
}
