//! Start and shutdown: binding, the `listening` event, the unsigned-requests
//! warning, graceful stop.

use tokio::time::Instant;

use super::*;

use auditcol_testkit::CapturedLog;

#[tokio::test]
async fn start_logs_listening_with_the_bound_address_path_and_format() {
    let (captured, _guard) = CapturedLog::start();
    let running = start_named(
        Some("flagsmith"),
        json!({"format": "flagsmith", "path": "/hooks/flagsmith", "signing_secret": "s"}),
    )
    .await;
    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("listening"))
        .unwrap_or_else(|| panic!("no listening event in {log}"));
    assert!(line.contains("component=webhook/flagsmith"), "{line}");
    assert!(line.contains("protocol=\"http\""), "{line}");
    assert!(
        line.contains(&format!("endpoint={}", running.addr())),
        "{line}"
    );
    assert!(line.contains("path=/hooks/flagsmith"), "{line}");
    assert!(line.contains("format=\"flagsmith\""), "{line}");
    assert!(!log.contains("no signing_secret"), "{log}");
}

#[tokio::test]
async fn without_a_secret_a_warning_is_logged_once_at_start_not_per_request() {
    let (captured, _guard) = CapturedLog::start();
    let running = start(json!({})).await;
    for key in ["a", "b"] {
        let reply = post_json(&running, good_body(&running, key).as_bytes()).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let log = captured.text();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("no signing_secret"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains(&running.addr().to_string()),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_bad_signature_is_logged_as_a_warning_with_the_client() {
    let (captured, _guard) = CapturedLog::start();
    let running = start(json!({"signing_secret": "s"})).await;
    let reply = post_json(&running, good_body(&running, "k").as_bytes()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let log = captured.text();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("refused a request")
            && l.contains("reason=\"signature\"")
            && l.contains("client=127.0.0.1:")
            && l.contains("missing x-flipt-webhook-signature header")),
        "{log}"
    );
}

#[tokio::test]
async fn nothing_is_bound_before_start_and_a_second_start_fails() {
    let config: WebhookReceiverConfig =
        parse_component_config(&json!({"endpoint": "127.0.0.1:0"})).unwrap();
    let receiver = WebhookReceiver::new(
        ComponentId::new("webhook", None),
        config,
        TestConsumer::new(),
    );
    assert_eq!(receiver.local_addr(), None);
    receiver.start().await.unwrap();
    assert!(receiver.local_addr().is_some());
    let err = receiver.start().await.unwrap_err();
    assert!(err.0.contains("already started"), "{}", err.0);
    receiver.shutdown(Instant::now()).await;
}

#[tokio::test]
async fn a_port_in_use_fails_the_start_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = taken.local_addr().unwrap().to_string();
    let config: WebhookReceiverConfig =
        parse_component_config(&json!({ "endpoint": endpoint })).unwrap();
    let receiver = WebhookReceiver::new(
        ComponentId::new("webhook", None),
        config,
        TestConsumer::new(),
    );
    let err = receiver.start().await.unwrap_err();
    assert!(
        err.0.contains(&format!("cannot listen on {endpoint}")),
        "{}",
        err.0
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let running = start(json!({})).await;
    let addr = running.addr();
    assert_still_serves(&running).await;
    running
        .receiver
        .shutdown(Instant::now() + std::time::Duration::from_secs(5))
        .await;
    assert_eq!(running.receiver.local_addr(), None);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
