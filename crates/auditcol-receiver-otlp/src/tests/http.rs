//! OTLP/HTTP behaviour, spoken to by a plain hyper client.

use std::io::Write;
use std::time::Duration;

use ::http::{Method, StatusCode};

use super::*;
use crate::ingest::RpcStatus;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

pub(crate) use auditcol_testkit::{Reply, send};

async fn post(running: &Running, content_type: &str, body: Vec<u8>) -> Reply {
    post_with(running, &[("content-type", content_type)], body).await
}

async fn post_with(running: &Running, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    send(
        running.addr("http"),
        Method::POST,
        "/v1/logs",
        headers,
        body,
    )
    .await
}

fn json_body(batch: &LogBatch) -> Vec<u8> {
    let mut out = Vec::new();
    batch.write_otlp_json(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The receiver keeps serving after a bad request.
async fn assert_still_serves(running: &Running) {
    let before = running.consumer.records();
    let reply = post(
        running,
        PROTOBUF,
        LogBatch::sample_audit(1).encode_protobuf(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(running.consumer.records(), before + 1);
}

#[tokio::test]
async fn a_protobuf_export_reaches_the_pipeline_stamped() {
    let running = start(json!({})).await;
    let reply = post(
        &running,
        PROTOBUF,
        LogBatch::sample_audit(3).encode_protobuf(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some(PROTOBUF));
    let response: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse =
        prost::Message::decode(&reply.body[..]).unwrap();
    assert_eq!(response.partial_success, None);
    let batches = running.consumer.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 3);
    assert_stamped(&batches[0]);
}

#[tokio::test]
async fn a_json_export_is_answered_in_json() {
    let running = start(json!({})).await;
    let reply = post(
        &running,
        "application/json; charset=utf-8",
        json_body(&LogBatch::sample_audit(2)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some(JSON));
    assert_eq!(reply.json(), json!({}));
    assert_eq!(running.consumer.records(), 2);
    assert_stamped(&running.consumer.batches()[0]);
}

#[tokio::test]
async fn a_gzip_export_is_accepted() {
    let running = start(json!({})).await;
    let body = gzip(&LogBatch::sample_audit(2).encode_protobuf());
    let reply = post_with(
        &running,
        &[("content-type", PROTOBUF), ("content-encoding", "gzip")],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(running.consumer.records(), 2);
}

#[tokio::test]
async fn malformed_json_is_bad_request_naming_the_field() {
    let running = start(json!({})).await;
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":true}]}]}]}"#;
    let reply = post(&running, JSON, body.to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let status = reply.json();
    assert_eq!(status["code"], 3);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano"),
        "{message}"
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn malformed_protobuf_is_bad_request_with_a_protobuf_status() {
    let running = start(json!({})).await;
    let reply = post(&running, PROTOBUF, vec![0x0a, 0xff, 0xff, 0x01]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.header("content-type"), Some(PROTOBUF));
    let status: RpcStatus = prost::Message::decode(&reply.body[..]).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.starts_with("invalid OTLP protobuf"),
        "{}",
        status.message
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn an_audit_record_without_action_is_bad_request_naming_it() {
    let running = start(json!({})).await;
    let body = prost::Message::encode_to_vec(&incomplete_audit_request());
    let reply = post(&running, PROTOBUF, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let status: RpcStatus = prost::Message::decode(&reply.body[..]).unwrap();
    assert!(
        status
            .message
            .starts_with("resourceLogs[0].scopeLogs[0].logRecords[0]: "),
        "{}",
        status.message
    );
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn invalid_records_among_valid_ones_are_a_partial_success_in_protobuf_and_json() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    let running = start(json!({})).await;
    let reply = post(
        &running,
        PROTOBUF,
        prost::Message::encode_to_vec(&mixed_request()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let response: ExportLogsServiceResponse = prost::Message::decode(&reply.body[..]).unwrap();
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("logRecords[1]"),
        "{}",
        partial.error_message
    );
    assert_eq!(running.consumer.records(), 2);

    let batch_json = {
        let mut out = Vec::new();
        auditcol_core::otlp_json::protobuf_to_json(
            &prost::Message::encode_to_vec(&mixed_request()),
            &mut out,
        )
        .unwrap();
        out
    };
    let reply = post(&running, JSON, batch_json).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedLogRecords"], "1", "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("audit.action"),
        "{body}"
    );
    assert_eq!(running.consumer.records(), 4);
}

#[tokio::test]
async fn reject_request_answers_400_for_any_invalid_record() {
    let running = start(json!({"on_invalid_record": "reject_request"})).await;
    let reply = post(
        &running,
        PROTOBUF,
        prost::Message::encode_to_vec(&mixed_request()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(running.consumer.batches().is_empty());
}

#[tokio::test]
async fn an_unsupported_content_type_is_415_naming_the_accepted_ones() {
    let running = start(json!({})).await;
    let reply = post(&running, "text/plain", b"hello".to_vec()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.text().contains("text/plain"), "{}", reply.text());
    assert!(reply.text().contains(PROTOBUF), "{}", reply.text());
    assert!(reply.text().contains(JSON), "{}", reply.text());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn an_unsupported_content_encoding_is_415_naming_it() {
    let running = start(json!({})).await;
    let reply = post_with(
        &running,
        &[("content-type", JSON), ("content-encoding", "br")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("`br`"), "{message}");
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn corrupt_gzip_is_bad_request() {
    let running = start(json!({})).await;
    let reply = post_with(
        &running,
        &[("content-type", JSON), ("content-encoding", "gzip")],
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let running = start(json!({"http": {"max_request_body_size": 1000}})).await;
    let reply = post(&running, PROTOBUF, vec![0; 2000]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let status: RpcStatus = prost::Message::decode(&reply.body[..]).unwrap();
    assert_eq!(
        status.message,
        "request body exceeds max_request_body_size (1000 bytes)"
    );
    assert_still_serves_small(&running).await;
}

#[tokio::test]
async fn a_body_over_the_limit_once_decompressed_is_413() {
    let running = start(json!({"http": {"max_request_body_size": 1000}})).await;
    let bomb = gzip(&vec![b' '; 500_000]);
    assert!(bomb.len() < 1000, "the compressed body itself fits");
    let reply = post_with(
        &running,
        &[("content-type", JSON), ("content-encoding", "gzip")],
        bomb,
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.json()["message"],
        "decompressed request body exceeds max_request_body_size (1000 bytes)"
    );
    assert_still_serves_small(&running).await;
}

/// [`assert_still_serves`] for receivers with a tiny body limit.
async fn assert_still_serves_small(running: &Running) {
    let body = LogBatch::sample_audit(1).encode_protobuf();
    assert!(body.len() <= 1000);
    let reply = post(running, PROTOBUF, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn backpressure_is_503_with_retry_after_in_whole_seconds() {
    let running = start(json!({})).await;
    running.consumer.answer(Err(PipelineError::backpressure(
        "queue full",
        Some(Duration::from_millis(1500)),
    )));
    let reply = post(&running, JSON, json_body(&LogBatch::sample_audit(1))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert_eq!(reply.json(), json!({"code": 14, "message": "queue full"}));
}

#[tokio::test]
async fn backpressure_without_a_hint_still_asks_to_wait_a_second() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::backpressure("queue full", None)));
    let reply = post(&running, JSON, json_body(&LogBatch::sample_audit(1))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn a_retryable_failure_is_503_with_retry_after_only_when_hinted() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::retryable("exporter down")));
    let reply = post(&running, JSON, json_body(&LogBatch::sample_audit(1))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), None);
}

#[tokio::test]
async fn a_permanent_failure_is_400() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::permanent("cannot be encoded")));
    let reply = post(&running, JSON, json_body(&LogBatch::sample_audit(1))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"code": 3, "message": "cannot be encoded"})
    );
    running.consumer.answer(Ok(()));
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn another_path_is_404() {
    let running = start(json!({})).await;
    let reply = send(
        running.addr("http"),
        Method::POST,
        "/v1/traces",
        &[("content-type", JSON)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_method_is_405() {
    let running = start(json!({})).await;
    let reply = send(
        running.addr("http"),
        Method::GET,
        "/v1/logs",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST"));
}

/// One HTTP/1.1 request written by hand on `stream`; the status code of the
/// answer, or `None` when the server closed the connection instead.
async fn raw_request(stream: &mut tokio::net::TcpStream, body: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nhost: x\r\ncontent-type: {PROTOBUF}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(body).await.ok()?;
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.ok()?;
    std::str::from_utf8(&answer[9..12]).ok()?.parse().ok()
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_and_a_freed_place_serves_again() {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    let running = start(json!({"http": {"max_connections": 2}})).await;
    let addr = running.addr("http");
    let first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        third.read(&mut byte).await.unwrap_or(0),
        0,
        "the third is closed"
    );
    // Admitted connections are served meanwhile.
    let body = LogBatch::sample_audit(1).encode_protobuf();
    assert_eq!(raw_request(&mut second, &body).await, Some(200));
    // Once one leaves, a new client gets its place (as soon as the server
    // has seen the close).
    drop(first);
    let mut attempts = 0;
    loop {
        let mut next = TcpStream::connect(addr).await.unwrap();
        if raw_request(&mut next, &body).await == Some(200) {
            break;
        }
        attempts += 1;
        assert!(attempts < 200, "the freed place never served a client");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(running.consumer.records(), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout_and_slow_ones_after_read_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let telemetry =
        auditcol_core::telemetry::Telemetry::new(auditcol_core::telemetry::MetricsLevel::Normal);
    let running = start_with(
        json!({"http": {"read_header_timeout": "300ms", "idle_timeout": "600ms"}}),
        &telemetry,
    )
    .await;
    let addr = running.addr("http");
    let started = tokio::time::Instant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /v1/logs HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A normal client is served meanwhile.
    let reply = post(
        &running,
        PROTOBUF,
        LogBatch::sample_audit(1).encode_protobuf(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Both are closed by the server (EOF or reset), well before this bound.
    for stream in [&mut idle, &mut slow] {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a 408 answer may come first
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a connection outlived its timeout after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Each close is counted with its reason (the posting client's own
    // connection may have gone idle too).
    let closed = |reason| {
        telemetry
            .sample(
                "auditcol_receiver_closed_connections_total",
                &[
                    ("receiver", "otlp"),
                    ("transport", "http"),
                    ("reason", reason),
                ],
            )
            .unwrap_or(0.0)
    };
    assert_eq!(closed("read_header_timeout"), 1.0);
    assert!(closed("idle") >= 1.0, "{}", closed("idle"));
}

#[tokio::test]
async fn an_h2c_connection_without_a_request_for_idle_timeout_is_sent_away() {
    let running = start(json!({"http": {"idle_timeout": "300ms"}})).await;
    let tcp = tokio::net::TcpStream::connect(running.addr("http"))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    // A request first: the idle time counts from its answer.
    let mut client = client.ready().await.unwrap();
    let request = ::http::Request::post(format!("http://{}/v1/logs", running.addr("http")))
        .header("content-type", PROTOBUF)
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(LogBatch::sample_audit(1).encode_protobuf().into(), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .expect("the idle connection was not sent away")
        .unwrap()
        .expect("GOAWAY NO_ERROR is a clean end");
}

#[tokio::test]
async fn a_body_slower_than_read_timeout_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let running = start(json!({"http": {"read_timeout": "300ms"}})).await;
    let mut tcp = tokio::net::TcpStream::connect(running.addr("http"))
        .await
        .unwrap();
    tcp.write_all(
        b"POST /v1/logs HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 100\r\n\r\nabc",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer))
        .await
        .expect("no answer to the late body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("read_timeout"), "{answer}");
    assert_eq!(running.consumer.records(), 0);
}
