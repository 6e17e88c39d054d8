//! Start and shutdown: binding, the `listening` event, graceful stop.

use std::time::Duration;

use ::http::{Method, StatusCode};
use tokio::time::Instant;

use super::http::send;
use super::*;

#[tokio::test]
async fn start_logs_one_listening_event_per_protocol_with_the_bound_address() {
    let (captured, _guard) = auditcol_testkit::CapturedLog::start();

    let running = start(json!({})).await;
    let log = captured.text();
    for protocol in ["grpc", "http"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("protocol=\"{protocol}\"")))
            .unwrap_or_else(|| panic!("no {protocol} event in {log}"));
        assert!(line.contains("listening"), "{line}");
        assert!(line.contains("component=otlp"), "{line}");
        assert!(
            line.contains(&format!("endpoint={}", running.addr(protocol))),
            "{line}"
        );
    }
}

#[tokio::test]
async fn only_the_configured_protocols_listen() {
    let config: OtlpReceiverConfig =
        parse_component_config(&json!({"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}))
            .unwrap();
    let receiver = OtlpReceiver::new(ComponentId::new("otlp", None), config, TestConsumer::new());
    assert!(
        receiver.local_addrs().is_empty(),
        "nothing is bound before start"
    );
    receiver.start().await.unwrap();
    let addrs = receiver.local_addrs();
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0].0, "grpc");
    assert!(addrs[0].1.ip().is_loopback());
    receiver
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_taken_port_fails_the_start_naming_endpoint_and_protocol() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = taken.local_addr().unwrap().to_string();
    let config: OtlpReceiverConfig = parse_component_config(&json!({"protocols": {
        "grpc": {"endpoint": endpoint},
    }}))
    .unwrap();
    let receiver = OtlpReceiver::new(ComponentId::new("otlp", None), config, TestConsumer::new());
    let err = receiver.start().await.unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("cannot listen on {endpoint} for OTLP/gRPC: ")),
        "{err}"
    );
    assert!(receiver.local_addrs().is_empty());
}

#[tokio::test]
async fn starting_twice_is_an_error() {
    let running = start(json!({})).await;
    assert!(running.receiver.start().await.is_err());
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_then_stops_listening() {
    let running = start(json!({})).await;
    let http_addr = running.addr("http");
    let grpc_addr = running.addr("grpc");
    let held = running.consumer.hold.lock().await;

    let in_flight = tokio::spawn(send(
        http_addr,
        Method::POST,
        "/v1/logs",
        &[("content-type", "application/x-protobuf")],
        LogBatch::sample_audit(1).encode_protobuf(),
    ));
    running.consumer.entered.notified().await;

    let receiver = running.receiver.clone();
    let shutdown = tokio::spawn(async move {
        receiver
            .shutdown(Instant::now() + Duration::from_secs(30))
            .await;
    });
    // New connections are refused once the servers stop accepting, while
    // the request above is still held in the pipeline.
    tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::TcpStream::connect(http_addr).await.is_ok()
            || tokio::net::TcpStream::connect(grpc_addr).await.is_ok()
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listeners close after shutdown begins");
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the request in flight"
    );

    drop(held);
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    shutdown.await.unwrap();
    assert_eq!(running.consumer.records(), 1);
}

#[tokio::test]
async fn shutdown_before_start_does_nothing() {
    let config: OtlpReceiverConfig =
        parse_component_config(&json!({"protocols": {"http": {}}})).unwrap();
    let receiver = OtlpReceiver::new(ComponentId::new("otlp", None), config, TestConsumer::new());
    receiver.shutdown(Instant::now()).await;
}
