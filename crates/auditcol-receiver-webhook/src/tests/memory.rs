//! Admission by the memory limiters of the pipelines fed: a request is
//! refused before its body is read when memory is over the soft limit, and
//! when its body and what decoding it may hold would pass the hard limit.

use std::time::Duration;

use auditcol_core::memorylimiter::{Admission, Limits, MemoryLimiter};

use super::*;

const MIB: u64 = 1 << 20;

/// A webhook receiver whose pipeline has `limiter`.
async fn start_limited(limiter: &MemoryLimiter) -> Running {
    let config: WebhookReceiverConfig =
        parse_component_config(&json!({"endpoint": "127.0.0.1:0"})).unwrap();
    let consumer = TestConsumer::new();
    let receiver = Arc::new(
        WebhookReceiver::new(
            ComponentId::new("webhook", None),
            config.clone(),
            consumer.clone(),
        )
        .with_admission(Admission::new(vec![limiter.clone()])),
    );
    receiver.start().await.unwrap();
    Running {
        receiver,
        consumer,
        config,
    }
}

fn limiter(hard: u64, soft: u64, measure: fn() -> Option<u64>) -> MemoryLimiter {
    MemoryLimiter::with_measure(Limits { hard, soft }, Duration::from_secs(3600), measure)
}

#[tokio::test]
async fn over_the_soft_limit_a_request_is_503_with_retry_after_and_nothing_enters() {
    let limiter = limiter(100 * MIB, 80 * MIB, || Some(90 * MIB));
    let running = start_limited(&limiter).await;
    let reply = post_json(
        &running,
        flipt_event("a", "2024-05-01T10:00:00Z").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
    assert!(reply.text().contains("memory limit"), "{reply:?}");
    assert_eq!(running.consumer.records(), 0);
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test]
async fn a_body_whose_decoding_would_pass_the_hard_limit_is_refused_and_gives_back_what_it_had() {
    // 8 MiB: a 200 KiB body (with what decoding it may hold) does not fit.
    let limiter = limiter(8 * MIB, 6 * MIB, || Some(0));
    let running = start_limited(&limiter).await;
    let big = format!(
        "[{}]",
        vec![flipt_event("a", "2024-05-01T10:00:00Z"); 900].join(",")
    );
    assert!(crate::decode_cost(big.len()) > 8 << 20);
    let reply = post_json(&running, big.as_bytes()).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(running.consumer.records(), 0);
    assert_eq!(limiter.in_flight(), 0);
    // A small one fits, and what it reserved is given back once answered.
    let reply = post_json(
        &running,
        flipt_event("b", "2024-05-01T10:00:00Z").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(running.consumer.records(), 1);
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test]
async fn a_declared_length_the_limiters_cannot_hold_is_refused_before_the_body_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // 512 KiB hard limit; 900,000 bytes declared (under max_request_body_size).
    let limiter = limiter(MIB / 2, MIB / 4, || Some(0));
    let running = start_limited(&limiter).await;
    let mut stream = tokio::net::TcpStream::connect(running.addr())
        .await
        .unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n",
        running.config.path
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // No byte of the body is sent: the answer comes from the head alone.
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("memory limit"), "{answer}");
    assert_eq!(running.consumer.records(), 0);
    assert_eq!(limiter.in_flight(), 0);
}
