//! OTLP/gRPC behaviour, spoken to by tonic clients.

use std::time::Duration;

use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::*;
use crate::ingest::{RETRY_INFO_TYPE_URL, RetryInfo, RpcStatus};

async fn client(running: &Running) -> LogsServiceClient<Channel> {
    LogsServiceClient::connect(running.grpc_url())
        .await
        .unwrap()
}

/// A batch as the request an OTLP client sends.
trait AsRequest {
    fn request(&self) -> ExportLogsServiceRequest;
}

impl AsRequest for LogBatch {
    fn request(&self) -> ExportLogsServiceRequest {
        prost::Message::decode(self.encode_protobuf().as_slice()).unwrap()
    }
}

async fn export(running: &Running, request: ExportLogsServiceRequest) -> Result<(), Status> {
    client(running).await.export(request).await.map(|_| ())
}

/// Sends bytes as they are, so tests can send what no OTLP client would.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn export_raw(running: &Running, body: Vec<u8>, gzip: bool) -> Result<(), Status> {
    let channel = tonic::transport::Endpoint::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    if gzip {
        grpc = grpc.send_compressed(CompressionEncoding::Gzip);
    }
    grpc.ready().await.unwrap();
    let path = ::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(|_| ())
}

/// The receiver keeps serving after a bad request.
async fn assert_still_serves(running: &Running) {
    let before = running.consumer.records();
    export(running, LogBatch::sample_audit(1).request())
        .await
        .expect("a good request succeeds after a bad one");
    assert_eq!(running.consumer.records(), before + 1);
}

#[tokio::test]
async fn an_export_reaches_the_pipeline_stamped() {
    let running = start(json!({})).await;
    export(&running, LogBatch::sample_audit(3).request())
        .await
        .unwrap();
    let batches = running.consumer.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 3);
    assert_stamped(&batches[0]);
}

#[tokio::test]
async fn audit_events_without_a_source_are_marked_as_coming_from_otlp() {
    let running = start(json!({})).await;
    export(&running, unsourced_audit_request()).await.unwrap();
    let batch = &running.consumer.batches()[0];
    let record = batch.records().next().unwrap();
    assert_eq!(record.attribute(AUDIT_SOURCE), Some("otlp"));
    assert!(record.attribute(AUDIT_ID).is_some());
}

#[tokio::test]
async fn an_empty_export_succeeds_without_touching_the_pipeline() {
    let running = start(json!({})).await;
    export(&running, ExportLogsServiceRequest::default())
        .await
        .unwrap();
    assert!(running.consumer.batches().is_empty());
}

#[tokio::test]
async fn a_gzip_export_is_accepted() {
    let running = start(json!({})).await;
    client(&running)
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .export(LogBatch::sample_audit(2).request())
        .await
        .unwrap();
    assert_eq!(running.consumer.records(), 2);
}

#[tokio::test]
async fn a_malformed_message_is_invalid_argument() {
    let running = start(json!({})).await;
    let err = export_raw(&running, vec![0x0a, 0xff, 0xff, 0x01], false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("invalid OTLP protobuf"),
        "{err:?}"
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn corrupt_gzip_is_invalid_argument() {
    let running = start(json!({})).await;
    // A message flagged compressed whose bytes are not gzip.
    let channel = tonic::transport::Endpoint::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut frame = vec![1u8];
    frame.extend_from_slice(&5u32.to_be_bytes());
    frame.extend_from_slice(b"nope!");
    let request = ::http::Request::builder()
        .method("POST")
        .uri(format!(
            "{}/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            running.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(frame),
        )))
        .unwrap();
    let mut channel = channel;
    tower::ServiceExt::ready(&mut channel).await.unwrap();
    let response = tower::Service::call(&mut channel, request).await.unwrap();
    let code = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(code.as_deref(), Some("3"), "{:?}", response.headers());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn an_audit_record_without_action_is_invalid_argument_naming_it() {
    let running = start(json!({})).await;
    let err = export(&running, incomplete_audit_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("resourceLogs[0].scopeLogs[0].logRecords[0]: "),
        "{err:?}"
    );
    assert!(err.message().contains("audit.action"), "{err:?}");
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn invalid_records_among_valid_ones_are_a_partial_success_naming_the_first() {
    let running = start(json!({})).await;
    let response = client(&running)
        .await
        .export(mixed_request())
        .await
        .unwrap()
        .into_inner();
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial
            .error_message
            .starts_with("resourceLogs[0].scopeLogs[0].logRecords[1]: "),
        "{}",
        partial.error_message
    );
    assert!(partial.error_message.contains("audit.action"));
    assert_eq!(running.consumer.records(), 2);
}

#[tokio::test]
async fn reject_request_refuses_a_request_with_any_invalid_record() {
    let running = start(json!({"on_invalid_record": "reject_request"})).await;
    let err = export(&running, mixed_request()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("logRecords[1]"), "{err:?}");
    assert!(running.consumer.batches().is_empty());
}

#[tokio::test]
async fn a_full_success_has_no_partial_success() {
    let running = start(json!({})).await;
    let response = client(&running)
        .await
        .export(LogBatch::sample_audit(2).request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.partial_success, None);
}

#[tokio::test]
async fn a_message_over_the_limit_is_resource_exhausted() {
    let running = start(json!({"grpc": {"max_recv_msg_size_mib": 1}})).await;
    let err = export_raw(&running, vec![0; 1_100_000], false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        err.message(),
        "request of 1100000 bytes exceeds max_recv_msg_size_mib (1 MiB)"
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_message_over_the_limit_once_decompressed_is_resource_exhausted() {
    let running = start(json!({"grpc": {"max_recv_msg_size_mib": 1}})).await;
    let err = export_raw(&running, vec![0; 2 * 1024 * 1024], true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        err.message(),
        "decompressed request exceeds max_recv_msg_size_mib (1 MiB)"
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn backpressure_is_unavailable_with_retry_info() {
    let running = start(json!({})).await;
    running.consumer.answer(Err(PipelineError::backpressure(
        "queue full",
        Some(Duration::from_secs(2)),
    )));
    let err = export(&running, LogBatch::sample_audit(1).request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "queue full");
    let details: RpcStatus = prost::Message::decode(err.details()).unwrap();
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    let info: RetryInfo = prost::Message::decode(&details.details[0].value[..]).unwrap();
    assert_eq!(info.retry_delay.unwrap().seconds, 2);
}

#[tokio::test]
async fn a_retryable_failure_is_unavailable() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::retryable("exporter down")));
    let err = export(&running, LogBatch::sample_audit(1).request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "exporter down");
}

#[tokio::test]
async fn a_permanent_failure_is_invalid_argument() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::permanent("cannot be encoded")));
    let err = export(&running, LogBatch::sample_audit(1).request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "cannot be encoded");
    running.consumer.answer(Ok(()));
    assert_still_serves(&running).await;
}

/// The resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A raw HTTP/2 connection to the receiver, for what no gRPC client sends.
async fn raw_h2(running: &Running) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(running.addr("grpc"))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    client
}

fn export_request(running: &Running) -> ::http::Request<()> {
    ::http::Request::post(format!(
        "{}/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        running.grpc_url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap()
}

/// Issue 12's attack: streams that declare a 4 MB message, send 10 bytes of
/// it and never finish. tonic's framing reserved the declared size per
/// stream (~2 GB for 500 streams); auditcol's grows buffers only with bytes
/// received.
#[tokio::test]
async fn half_open_streams_declaring_large_messages_take_no_memory() {
    let running = start(json!({"grpc": {"max_concurrent_streams": 1000}})).await;
    let before = rss_bytes();
    let mut client = raw_h2(&running).await;
    let mut open = Vec::new();
    for _ in 0..500 {
        client = client.ready().await.unwrap();
        let (response, mut body) = client
            .send_request(export_request(&running), false)
            .unwrap();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&4_000_000u32.to_be_bytes());
        frame.extend_from_slice(&[0u8; 10]);
        body.send_data(bytes::Bytes::from(frame), false).unwrap();
        open.push((response, body));
    }
    // A normal client is served meanwhile, after all those frames.
    export(&running, LogBatch::sample_audit(1).request())
        .await
        .unwrap();
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "500 half-open streams grew the process by {} MiB",
        grown >> 20
    );
    assert_eq!(running.consumer.records(), 1);
}

#[tokio::test]
async fn a_declared_size_over_the_limit_is_refused_before_the_body_arrives() {
    let running = start(json!({"grpc": {"max_recv_msg_size_mib": 1}})).await;
    let mut client = raw_h2(&running).await.ready().await.unwrap();
    let (response, mut body) = client
        .send_request(export_request(&running), false)
        .unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&4_000_000u32.to_be_bytes());
    body.send_data(bytes::Bytes::from(frame), false).unwrap();
    // The body is never finished: the answer comes from the prefix alone.
    let response = response.await.unwrap();
    let status = response.headers().get("grpc-status").unwrap();
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {:?}", response.headers());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn connections_advertise_max_concurrent_streams() {
    for (config, expected) in [
        (json!({}), 100),
        (json!({"grpc": {"max_concurrent_streams": 3}}), 3),
    ] {
        let running = start(config).await;
        let tcp = tokio::net::TcpStream::connect(running.addr("grpc"))
            .await
            .unwrap();
        let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
        // Drive the connection until a round trip is done: by then the
        // server's SETTINGS have been read.
        let ping = async {
            let mut client = client.ready().await.unwrap();
            let (response, _) = client.send_request(export_request(&running), true).unwrap();
            response.await.unwrap()
        };
        tokio::select! {
            _ = &mut connection => panic!("the connection closed"),
            _ = ping => {}
        }
        assert_eq!(connection.max_concurrent_send_streams(), expected);
    }
}

#[tokio::test]
async fn a_message_sent_one_byte_per_frame_is_accepted() {
    let running = start(json!({})).await;
    let mut client = raw_h2(&running).await.ready().await.unwrap();
    let (response, mut body) = client
        .send_request(export_request(&running), false)
        .unwrap();
    let message = LogBatch::sample_audit(3).encode_protobuf();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let last = frame.len() - 1;
    for (i, byte) in frame.into_iter().enumerate() {
        body.send_data(bytes::Bytes::from(vec![byte]), i == last)
            .unwrap();
    }
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut response_body = response.into_body();
    while response_body.data().await.is_some() {}
    let trailers = response_body.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(running.consumer.records(), 3);
}

/// Frames of every size, kept or copied, cuts inside the prefix and inside
/// records, plain and gzip: the records arrive as they were sent.
#[tokio::test]
async fn a_message_in_frames_of_mixed_sizes_arrives_intact() {
    use std::io::Write;
    let running = start(json!({})).await;
    let sent = LogBatch::sample_audit(200);
    let message = sent.encode_protobuf();
    for gzip in [false, true] {
        let mut request = export_request(&running);
        let payload = if gzip {
            request
                .headers_mut()
                .insert("grpc-encoding", ::http::HeaderValue::from_static("gzip"));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&message).unwrap();
            encoder.finish().unwrap()
        } else {
            message.clone()
        };
        let mut frame = vec![u8::from(gzip)];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let mut client = raw_h2(&running).await.ready().await.unwrap();
        let (response, mut body) = client.send_request(request, false).unwrap();
        let mut rest = bytes::Bytes::from(frame);
        for size in [2, 1, 9_000, 3, 16_384, 700, 8_192, 8_191, 12_000]
            .iter()
            .cycle()
        {
            let piece = rest.split_to((*size).min(rest.len()));
            body.reserve_capacity(piece.len());
            body.send_data(piece, rest.is_empty()).unwrap();
            if rest.is_empty() {
                break;
            }
        }
        let response = response.await.unwrap();
        let mut response_body = response.into_body();
        while response_body.data().await.is_some() {}
        let trailers = response_body.trailers().await.unwrap().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "0", "gzip {gzip}");
    }
    for received in running.consumer.batches() {
        assert_eq!(received.len(), sent.len());
        for (got, want) in received.records().zip(sent.records()) {
            assert_eq!(got.audit_noun_verb(), want.audit_noun_verb());
            assert_eq!(got.time_unix_nano(), want.time_unix_nano());
            assert_eq!(got.body_json(), want.body_json());
        }
    }
    assert_eq!(running.consumer.records(), 400);
}

#[tokio::test]
async fn grpc_connections_past_max_connections_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let running = start(json!({"grpc": {"max_connections": 1}})).await;
    let admitted = raw_h2(&running).await;
    let mut refused = tokio::net::TcpStream::connect(running.addr("grpc"))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        refused.read(&mut byte).await.unwrap_or(0),
        0,
        "closed at once"
    );
    // The admitted connection is still served.
    let mut client = admitted.ready().await.unwrap();
    let (response, mut body) = client
        .send_request(export_request(&running), false)
        .unwrap();
    let message = LogBatch::sample_audit(1).encode_protobuf();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    body.send_data(bytes::Bytes::from(frame), true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

/// Reads HTTP/2 frames from a client that never answers: returns the types
/// of the frames seen until the server closes the connection, or `None` if
/// it is still open after `wait`.
async fn frames_until_closed(tcp: &mut tokio::net::TcpStream, wait: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut header = [0u8; 9];
        match tokio::time::timeout_at(deadline, tcp.read_exact(&mut header)).await {
            Err(_) => return None,
            Ok(Err(_)) => return Some(seen),
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        seen.push(header[3]);
        let mut payload = vec![0u8; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            return Some(seen);
        }
    }
}

/// Opens a TCP connection and says the HTTP/2 preface with empty SETTINGS,
/// then goes silent (never acknowledges anything).
async fn silent_h2_client(running: &Running) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(running.addr("grpc"))
        .await
        .unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    tcp
}

const PING: u8 = 6;

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed() {
    let running = start(json!({"grpc": {"keepalive": {"server_parameters": {
        "time": "200ms", "timeout": "200ms"}}}}))
    .await;
    let mut tcp = silent_h2_client(&running).await;
    let frames = frames_until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("the silent connection was not closed");
    assert!(frames.contains(&PING), "no ping before closing: {frames:?}");
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn without_keepalive_a_silent_connection_stays() {
    let running =
        start(json!({"grpc": {"keepalive": {"server_parameters": {"time": "0s"}}}})).await;
    let mut tcp = silent_h2_client(&running).await;
    assert_eq!(
        frames_until_closed(&mut tcp, Duration::from_millis(800)).await,
        None
    );
}

#[tokio::test]
async fn connections_older_than_max_connection_age_are_sent_away() {
    let running = start(json!({"grpc": {"keepalive": {"server_parameters": {
        "max_connection_age": "300ms", "max_connection_age_grace": "200ms"}}}}))
    .await;
    // A real client hears GOAWAY and its connection ends cleanly.
    let tcp = tokio::net::TcpStream::connect(running.addr("grpc"))
        .await
        .unwrap();
    let begin = tokio::time::Instant::now();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the old connection was not sent away")
        .expect("GOAWAY is a clean end, not an error");
    assert!(begin.elapsed() >= Duration::from_millis(300));
    // One that never answers is closed all the same.
    let mut tcp = silent_h2_client(&running).await;
    let frames = frames_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(frames.is_some(), "the silent old connection stayed open");
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn keepalive_settings_are_checked() {
    for (json, path) in [
        (
            json!({"protocols": {"grpc": {"keepalive": {"server_parameters": {"timeout": "0s"}}}}}),
            "protocols.grpc.keepalive.server_parameters.timeout",
        ),
        (
            json!({"protocols": {"grpc": {"keepalive": {"server_parameters": {"max_connection_age_grace": "1s"}}}}}),
            "protocols.grpc.keepalive.server_parameters.max_connection_age_grace",
        ),
        (
            json!({"protocols": {"grpc": {"keepalive": {"enforcement_policy": {"min_time": "0s"}}}}}),
            "protocols.grpc.keepalive.enforcement_policy.min_time",
        ),
        (
            json!({"protocols": {"grpc": {"keepalive": {"enforcement_policy": {"permit": true}}}}}),
            "protocols.grpc.keepalive.enforcement_policy.permit",
        ),
    ] {
        let err = auditcol_core::config::parse_component_config::<crate::OtlpReceiverConfig>(&json)
            .unwrap_err();
        assert_eq!(err.path, path);
    }
}

/// An HTTP/2 connection to the gRPC port, driven in a task that returns how
/// it ended.
async fn h2_connection(
    running: &Running,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    h2::PingPong,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(running.addr("grpc"))
        .await
        .unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let pings = connection.ping_pong().unwrap();
    (client, pings, tokio::spawn(connection))
}

/// How a connection ended, waiting at most a generous bound.
async fn ended(
    connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
) -> Result<(), h2::Error> {
    tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .expect("the connection was not closed")
        .unwrap()
}

#[tokio::test]
async fn a_client_pinging_too_often_is_sent_goaway_enhance_your_calm_and_closed() {
    // The default policy: 5 minutes between pings, none without a call.
    let running = start(json!({})).await;
    let (_client, mut pings, connection) = h2_connection(&running).await;
    for _ in 0..4 {
        if pings.ping(h2::Ping::opaque()).await.is_err() {
            break;
        }
    }
    let error = ended(connection)
        .await
        .expect_err("closed with an error code");
    assert!(error.is_go_away() && error.is_remote(), "{error:?}");
    assert_eq!(error.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM));
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn pings_min_time_apart_are_allowed_without_a_call_when_permitted() {
    let running = start(json!({"grpc": {"keepalive": {"enforcement_policy": {
        "min_time": "100ms", "permit_without_stream": true}}}}))
    .await;
    let (client, mut pings, connection) = h2_connection(&running).await;
    for _ in 0..6 {
        pings.ping(h2::Ping::opaque()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(!connection.is_finished());
    // The same connection still carries calls.
    let mut client = client.ready().await.unwrap();
    let (response, mut body) = client
        .send_request(export_request(&running), false)
        .unwrap();
    body.send_data(grpc_frame(&LogBatch::sample_audit(1)), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[tokio::test]
async fn answers_forgive_early_pings() {
    // As a client estimating bandwidth does: a ping after each answer.
    let running = start(json!({"grpc": {"keepalive": {"enforcement_policy": {
        "min_time": "1h"}}}}))
    .await;
    let (client, mut pings, connection) = h2_connection(&running).await;
    let mut client = client.ready().await.unwrap();
    for _ in 0..6 {
        let (response, mut body) = client
            .send_request(export_request(&running), false)
            .unwrap();
        body.send_data(grpc_frame(&LogBatch::sample_audit(1)), true)
            .unwrap();
        let mut response = response.await.unwrap().into_body();
        while response.data().await.is_some() {}
        response.trailers().await.unwrap();
        pings.ping(h2::Ping::opaque()).await.unwrap();
        pings.ping(h2::Ping::opaque()).await.unwrap();
    }
    assert!(!connection.is_finished());
    assert_eq!(running.consumer.records(), 6);
}

/// One `Export` message, framed.
fn grpc_frame(batch: &LogBatch) -> bytes::Bytes {
    let message = batch.encode_protobuf();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    frame.into()
}

#[tokio::test]
async fn a_connection_without_a_call_for_max_connection_idle_is_sent_away_and_one_with_a_call_is_not()
 {
    let running = start(json!({"grpc": {"keepalive": {"server_parameters": {
        "max_connection_idle": "300ms"}}}}))
    .await;
    // Idle from the start: GOAWAY (NO_ERROR), a clean end.
    let (_idle, _, idle_connection) = h2_connection(&running).await;
    // A call in flight: its message is never finished, for now.
    let (busy, _, busy_connection) = h2_connection(&running).await;
    let mut busy = busy.ready().await.unwrap();
    let (response, mut body) = busy.send_request(export_request(&running), false).unwrap();
    let frame = grpc_frame(&LogBatch::sample_audit(2));
    body.send_data(frame.slice(..10), false).unwrap();

    ended(idle_connection)
        .await
        .expect("GOAWAY NO_ERROR is a clean end");
    // Well past max_connection_idle, the busy one is still open...
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!busy_connection.is_finished());
    // ...finishes its call...
    body.send_data(frame.slice(10..), true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(running.consumer.records(), 2);
    // ...and is sent away once idle in turn.
    ended(busy_connection).await.expect("a clean end");
    // A connection that never says a word is closed too.
    let mut silent = tokio::net::TcpStream::connect(running.addr("grpc"))
        .await
        .unwrap();
    assert!(
        frames_until_closed(&mut silent, Duration::from_secs(20))
            .await
            .is_some()
    );
}
