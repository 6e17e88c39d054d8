//! What the receiver counts and logs: records accepted and refused per
//! transport, requests refused by reason, with the client's address.

use ::http::Method;
use auditcol_core::telemetry::{MetricsLevel, Telemetry};
use auditcol_testkit::{CapturedLog, send};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;

use super::*;

const PROTOBUF: &str = "application/x-protobuf";

async fn post(running: &Running, content_type: &str, body: Vec<u8>) -> u16 {
    send(
        running.addr("http"),
        Method::POST,
        "/v1/logs",
        &[("content-type", content_type)],
        body,
    )
    .await
    .status
    .as_u16()
}

async fn export(running: &Running, batch: &LogBatch) -> Result<(), tonic::Status> {
    let request: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
        prost::Message::decode(batch.encode_protobuf().as_slice()).unwrap();
    LogsServiceClient::connect(running.grpc_url())
        .await
        .unwrap()
        .export(request)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn records_are_counted_per_transport_and_refused_requests_per_reason() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let running = start_with(json!({}), &telemetry).await;
    let proto = |request: &auditcol_core::model::ExportLogsServiceRequest| {
        prost::Message::encode_to_vec(request)
    };
    // HTTP: 3 accepted; 2 accepted and 1 left out; 1 refused; undecodable;
    // an unsupported media type; 2 refused by a full pipeline.
    assert_eq!(
        post(
            &running,
            PROTOBUF,
            LogBatch::sample_audit(3).encode_protobuf()
        )
        .await,
        200
    );
    assert_eq!(post(&running, PROTOBUF, proto(&mixed_request())).await, 200);
    assert_eq!(
        post(&running, PROTOBUF, proto(&incomplete_audit_request())).await,
        400
    );
    assert_eq!(post(&running, PROTOBUF, vec![0xff, 0xff, 0xff]).await, 400);
    assert_eq!(post(&running, "text/plain", b"hello".to_vec()).await, 415);
    running
        .consumer
        .answer(Err(PipelineError::backpressure("queue full", None)));
    assert_eq!(
        post(
            &running,
            PROTOBUF,
            LogBatch::sample_audit(2).encode_protobuf()
        )
        .await,
        503
    );
    // gRPC: 4 refused for good by the pipeline, then 5 accepted.
    running
        .consumer
        .answer(Err(PipelineError::permanent("refused by the destination")));
    export(&running, &LogBatch::sample_audit(4))
        .await
        .unwrap_err();
    running.consumer.answer(Ok(()));
    export(&running, &LogBatch::sample_audit(5)).await.unwrap();

    let http = [("receiver", "otlp"), ("transport", "http")];
    let grpc = [("receiver", "otlp"), ("transport", "grpc")];
    let with =
        |base: [(&'static str, &'static str); 2], reason| [base[0], base[1], ("reason", reason)];
    let accepted = "otelcol_receiver_accepted_log_records_total";
    let refused = "otelcol_receiver_refused_log_records_total";
    let requests = "auditcol_receiver_refused_requests_total";
    for (name, labels, want) in [
        (accepted, &http[..], 5.0),
        (refused, &http[..], 1.0 + 1.0 + 2.0),
        (accepted, &grpc[..], 5.0),
        (refused, &grpc[..], 4.0),
        (requests, &with(http, "invalid")[..], 2.0),
        (requests, &with(http, "unsupported")[..], 1.0),
        (requests, &with(http, "backpressure")[..], 1.0),
        (requests, &with(grpc, "rejected")[..], 1.0),
    ] {
        assert_eq!(
            telemetry.sample(name, labels),
            Some(want),
            "{name}{labels:?}\n{}",
            telemetry.encode()
        );
    }
    // Reasons that never happened have no series.
    assert!(!telemetry.encode().contains("reason=\"signature\""));
    assert_eq!(running.receiver.record_counts("http"), (5, 4));
    assert_eq!(running.receiver.record_counts("grpc"), (5, 4));
}

#[tokio::test]
async fn a_refusal_is_logged_once_with_the_client_address_then_summarised() {
    let (captured, _guard) = CapturedLog::start();
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let running = start_with(json!({}), &telemetry).await;
    let body = prost::Message::encode_to_vec(&incomplete_audit_request());
    for _ in 0..3 {
        assert_eq!(post(&running, PROTOBUF, body.clone()).await, 400);
    }
    let text = captured.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("refused a request"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = lines[0];
    for part in [
        "WARN",
        "component=receivers::otlp (http)",
        "reason=\"invalid\"",
        "client=127.0.0.1:",
        "records=1",
        "audit.action",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    // The two that followed wait for the summary.
    telemetry.flush_logs(true);
    let text = captured.text();
    assert!(
        text.lines().any(
            |l| l.contains("refused a request: 2 more since the last report")
                && l.contains("last_client=127.0.0.1:")
        ),
        "{text}"
    );
}
