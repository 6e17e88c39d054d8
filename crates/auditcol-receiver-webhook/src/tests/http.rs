//! What the receiver answers, spoken to by a plain hyper client: every
//! success, and every error status followed by a good request that succeeds.

use std::io::{Read, Write};
use std::time::Duration;

use auditcol_core::model::conventions::{AUDIT_ID, AUDIT_SOURCE};

use super::*;
use crate::flagsmith::{
    FLAGSMITH_ENVIRONMENT_ID, FLAGSMITH_PROJECT_ID, FLAGSMITH_RELATED_OBJECT_ID,
    FLAGSMITH_RELATED_OBJECT_UUID,
};

const SECRET: &str = "my shared secret";

#[tokio::test]
async fn a_flipt_event_reaches_the_pipeline_stamped_and_comes_out_as_sent() {
    let running = start(json!({})).await;
    let body = flipt_event("flipt", "2024-05-01T10:00:00Z");
    let reply = post_json(&running, body.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({"accepted": 1}));

    let batches = running.consumer.batches();
    assert_eq!(batches.len(), 1);
    let record = batches[0].records().next().unwrap();
    assert_eq!(record.attribute(AUDIT_SOURCE), Some("flipt"));
    assert_eq!(record.resource_attribute("service.name"), Some("flipt"));
    let id = record.attribute(AUDIT_ID).unwrap();
    assert_eq!(id.chars().nth(14), Some('7'), "a UUIDv7: {id}");
    assert!(record.observed_time_unix_nano() > 0);
    assert_eq!(record.event_name(), "audit.flag.created");
    assert_eq!(running.consumer.lines(), [body]);
}

#[tokio::test]
async fn an_array_or_ndjson_request_is_one_batch_in_order() {
    let running = start(json!({})).await;
    let events: Vec<String> = (0..3)
        .map(|i| flipt_event(&format!("k{i}"), &format!("2024-05-01T10:00:0{i}Z")))
        .collect();
    let array = format!("[{}]", events.join(","));
    let reply = post_json(&running, array.as_bytes()).await;
    assert_eq!(reply.json(), json!({"accepted": 3}));
    let ndjson = format!("{}\n{}\n", events[0], events[1]);
    let reply = post(
        &running,
        &[("content-type", "application/x-ndjson")],
        ndjson.as_bytes(),
    )
    .await;
    assert_eq!(reply.json(), json!({"accepted": 2}));
    let sizes: Vec<_> = running
        .consumer
        .batches()
        .iter()
        .map(LogBatch::len)
        .collect();
    assert_eq!(sizes, [3, 2]);
    assert_eq!(
        running.consumer.lines(),
        [&events[..], &events[..2]].concat()
    );
}

#[tokio::test]
async fn a_flagsmith_entry_keeps_its_id_and_its_ids_as_attributes() {
    let running = start(json!({"format": "flagsmith"})).await;
    let body = flagsmith_envelope(812, "New Flag / Remote Config created: my_feature");
    let reply = post_json(&running, body.as_bytes()).await;
    assert_eq!(reply.json(), json!({"accepted": 1}), "{}", reply.text());
    let batch = &running.consumer.batches()[0];
    let record = batch.records().next().unwrap();
    assert_eq!(record.attribute(AUDIT_ID), Some("812"));
    assert_eq!(record.attribute(AUDIT_SOURCE), Some("flagsmith"));
    assert_eq!(record.attribute(FLAGSMITH_PROJECT_ID), Some("6"));
    assert_eq!(record.attribute(FLAGSMITH_ENVIRONMENT_ID), Some("12"));
    assert_eq!(record.attribute(FLAGSMITH_RELATED_OBJECT_ID), Some("6"));
    assert_eq!(record.attribute(FLAGSMITH_RELATED_OBJECT_UUID), None);
    assert_eq!(record.event_name(), "audit.feature.created");
    let line: serde_json::Value = serde_json::from_str(&running.consumer.lines()[0]).unwrap();
    assert_eq!(line["timestamp"], "2024-05-01T10:00:00.25Z");
    assert_eq!(line["payload"]["id"], 812);
}

#[tokio::test]
async fn a_named_receiver_is_the_events_source() {
    let running = start_named(Some("billing"), json!({})).await;
    post_json(
        &running,
        flipt_event("k", "2024-05-01T10:00:00Z").as_bytes(),
    )
    .await;
    let batch = &running.consumer.batches()[0];
    assert_eq!(
        batch.records().next().unwrap().attribute(AUDIT_SOURCE),
        Some("billing")
    );
}

#[tokio::test]
async fn flagsmith_webhook_events_that_are_not_audit_log_entries_are_acknowledged_not_kept() {
    let running = start(json!({"format": "flagsmith"})).await;
    let body = json!({"data": {"new_state": {"enabled": true}}, "event_type": "FLAG_UPDATED"});
    let reply = post_json(&running, body.to_string().as_bytes()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"accepted": 0, "ignored": 1}));
    assert!(running.consumer.batches().is_empty());
}

#[tokio::test]
async fn an_empty_array_is_accepted_without_a_batch() {
    let running = start(json!({})).await;
    let reply = post_json(&running, b"[]").await;
    assert_eq!(reply.json(), json!({"accepted": 0}));
    assert!(running.consumer.batches().is_empty());
}

#[tokio::test]
async fn a_signed_request_is_accepted() {
    for format in ["audit", "flagsmith"] {
        let running = start(json!({"format": format, "signing_secret": SECRET})).await;
        let body = good_body(&running, "signed");
        let header = running.config.signature_header_name().unwrap();
        let reply = post(
            &running,
            &[
                ("content-type", "application/json"),
                (header.as_str(), &sign(SECRET, body.as_bytes())),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{format}: {}", reply.text());
    }
}

#[tokio::test]
async fn a_missing_signature_is_401_and_nothing_enters_the_pipeline() {
    let running = start(json!({"format": "flagsmith", "signing_secret": SECRET})).await;
    let body = good_body(&running, "unsigned");
    let reply = post_json(&running, body.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply
            .error()
            .starts_with("missing x-flagsmith-signature header"),
        "{}",
        reply.error()
    );
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_body_changed_by_one_byte_is_401_and_nothing_enters_the_pipeline() {
    let running = start(json!({"signing_secret": SECRET})).await;
    let body = good_body(&running, "flipt");
    let signature = sign(SECRET, body.as_bytes());
    // Still a valid event: only the signature can tell.
    let mut forged = body.clone().into_bytes();
    forged[body.find("flipt flag").unwrap()] = b'F';
    let reply = post(
        &running,
        &[
            ("content-type", "application/json"),
            ("x-flipt-webhook-signature", &signature),
        ],
        &forged,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.error().contains("does not match the body"),
        "{}",
        reply.error()
    );
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_signature_made_with_another_secret_or_malformed_is_401() {
    let running = start(json!({"signing_secret": SECRET})).await;
    let body = good_body(&running, "k");
    for signature in [sign("not the secret", body.as_bytes()), "abc".to_owned()] {
        let reply = post(
            &running,
            &[
                ("content-type", "application/json"),
                ("x-flipt-webhook-signature", &signature),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{signature}");
    }
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_custom_signature_header_is_the_one_read() {
    let running =
        start(json!({"signing_secret": SECRET, "signature_header": "X-Hub-Signature"})).await;
    let body = good_body(&running, "k");
    let signature = sign(SECRET, body.as_bytes());
    let reply = post(
        &running,
        &[
            ("content-type", "application/json"),
            ("x-flipt-webhook-signature", &signature),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_bad_event_is_400_naming_its_index_and_field_and_the_request_is_refused_whole() {
    let running = start(json!({})).await;
    let mut events: Vec<String> = (0..4)
        .map(|i| flipt_event(&format!("k{i}"), "2024-05-01T10:00:00Z"))
        .collect();
    events[3] = events[3].replace("2024-05-01T10:00:00Z", "2024-05-01 10:00");
    let reply = post_json(&running, format!("[{}]", events.join(",")).as_bytes()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.error(),
        "events[3].timestamp: not RFC 3339: `2024-05-01 10:00` (write e.g. `2024-05-01T10:00:00Z`)"
    );
    assert!(
        running.consumer.batches().is_empty(),
        "no event of the request"
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn invalid_json_is_400_with_its_position() {
    let running = start(json!({})).await;
    let reply = post_json(&running, br#"{"version": "0.2", "type": }"#).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.error().starts_with("events[0]") && reply.error().contains("invalid JSON"),
        "{}",
        reply.error()
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_payload_deeper_than_otlp_allows_is_400_naming_the_event_in_the_request() {
    // The core's record check (AnyValue nesting) refuses it; the index is the
    // event's place in the request, after an ignored Flagsmith entry.
    let running = start(json!({"format": "flagsmith"})).await;
    let mut entry: serde_json::Value = serde_json::from_str(&flagsmith_envelope(1, "x")).unwrap();
    let mut deep = json!("bottom");
    for _ in 0..40 {
        deep = json!([deep]);
    }
    entry["data"]["extra"] = deep;
    let ignored = json!({"event_type": "FLAG_UPDATED", "data": {}});
    let body = json!([ignored, entry]).to_string();
    let reply = post_json(&running, body.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.error().starts_with("events[1]"), "{}", reply.error());
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413() {
    let running = start(json!({"max_request_body_size": 1000})).await;
    let reply = post_json(&running, &vec![b' '; 2000]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.error(),
        "request body exceeds max_request_body_size (1000 bytes)"
    );
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_chunked_body_growing_over_the_limit_is_413() {
    let running = start(json!({"max_request_body_size": 1000})).await;
    let addr = running.addr();
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let chunk = vec![b' '; 600];
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..2 {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(&chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        stream.write_all(&request).unwrap();
        let mut raw = String::new();
        let _ = stream.read_to_string(&mut raw);
        raw
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn another_content_type_is_415_naming_the_accepted_ones() {
    let running = start(json!({})).await;
    let body = good_body(&running, "k");
    for headers in [vec![("content-type", "text/plain")], vec![]] {
        let reply = post(&running, &headers, body.as_bytes()).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            reply
                .error()
                .ends_with("send application/json or application/x-ndjson"),
            "{}",
            reply.error()
        );
    }
    let reply = post(
        &running,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.error().contains("`gzip`"), "{}", reply.error());
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn another_method_is_405_with_allow() {
    let running = start(json!({})).await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let reply = send(running.addr(), method.clone(), "/", &[], Vec::new()).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"));
    }
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn another_path_is_404_naming_the_right_one() {
    let running = start(json!({"path": "/flipt"})).await;
    let body = good_body(&running, "k");
    let reply = send(
        running.addr(),
        Method::POST,
        "/flagsmith",
        &[("content-type", "application/json")],
        body.into_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.error().contains("POST /flipt"), "{}", reply.error());
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn backpressure_is_503_with_retry_after_in_whole_seconds() {
    let running = start(json!({})).await;
    running.consumer.answer(Err(PipelineError::backpressure(
        "queue full",
        Some(Duration::from_millis(1500)),
    )));
    let reply = post_signed(&running, good_body(&running, "k").as_bytes()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert_eq!(reply.json(), json!({"error": "queue full"}));
    running.consumer.answer(Ok(()));
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn backpressure_without_a_hint_still_asks_to_wait_a_second() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::backpressure("queue full", None)));
    let reply = post_signed(&running, good_body(&running, "k").as_bytes()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("1"));
    running.consumer.answer(Ok(()));
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_retryable_failure_is_503_with_retry_after_only_when_hinted() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::retryable("exporter down")));
    let reply = post_signed(&running, good_body(&running, "k").as_bytes()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), None);
    running.consumer.answer(Err(PipelineError::Retryable {
        message: "exporter down".into(),
        retry_after: Some(Duration::from_secs(4)),
    }));
    let reply = post_signed(&running, good_body(&running, "k").as_bytes()).await;
    assert_eq!(reply.header("retry-after"), Some("4"));
    running.consumer.answer(Ok(()));
    assert_still_serves(&running).await;
}

#[tokio::test]
async fn a_permanent_failure_is_400() {
    let running = start(json!({})).await;
    running
        .consumer
        .answer(Err(PipelineError::permanent("cannot be encoded")));
    let reply = post_signed(&running, good_body(&running, "k").as_bytes()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json(), json!({"error": "cannot be encoded"}));
    running.consumer.answer(Ok(()));
    assert_still_serves(&running).await;
}
