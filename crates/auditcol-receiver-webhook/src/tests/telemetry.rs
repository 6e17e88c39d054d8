//! What the receiver counts: events accepted and refused, requests refused
//! by reason (bad signatures among them), entries dropped as not audit events.

use auditcol_core::telemetry::{MetricsLevel, Telemetry};

use super::*;

#[tokio::test]
async fn events_signature_refusals_and_ignored_entries_are_counted() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let running = start_with(
        Some("flagsmith"),
        json!({"format": "flagsmith", "signing_secret": "s3cret"}),
        &telemetry,
    )
    .await;
    // Two entries signed: one audit-log entry, one other webhook event.
    let body = format!(
        "[{},{}]",
        flagsmith_envelope(1, "New Flag created: dark_mode"),
        json!({"data": {}, "event_type": "FLAG_UPDATED"})
    );
    let reply = post_signed(&running, body.as_bytes()).await;
    assert_eq!(reply.json(), json!({"accepted": 1, "ignored": 1}));
    // Unsigned: refused before anything is read from it.
    let reply = post_json(&running, body.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Signed but not JSON.
    let reply = post_signed(&running, b"{").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // The pipeline is full: the one event is refused.
    running
        .consumer
        .answer(Err(PipelineError::backpressure("queue full", None)));
    let reply = post_signed(
        &running,
        flagsmith_envelope(2, "New Flag created: x").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    let base = [("receiver", "webhook/flagsmith"), ("transport", "http")];
    let with = |reason| [base[0], base[1], ("reason", reason)];
    let requests = "auditcol_receiver_refused_requests_total";
    for (name, labels, want) in [
        (
            "otelcol_receiver_accepted_log_records_total",
            &base[..],
            1.0,
        ),
        ("otelcol_receiver_refused_log_records_total", &base[..], 1.0),
        (requests, &with("signature")[..], 1.0),
        (requests, &with("invalid")[..], 1.0),
        (requests, &with("backpressure")[..], 1.0),
        (
            "auditcol_receiver_dropped_log_records_total",
            &with("non_audit")[..],
            1.0,
        ),
    ] {
        assert_eq!(
            telemetry.sample(name, labels),
            Some(want),
            "{name}{labels:?}\n{}",
            telemetry.encode()
        );
    }
    assert_eq!(running.receiver.record_counts(), (1, 1));
}
