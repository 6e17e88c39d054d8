//! What the receiver counts: events accepted and refused, requests refused
//! by reason (bad signatures among them), entries dropped as not audit events.

use auditcol_core::telemetry::{MetricsLevel, Telemetry};

use super::*;

/// The value of the sample `name{labels}` (labels as written, sorted).
fn value(text: &str, name: &str, labels: &str) -> Option<u64> {
    let head = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&head))
        .map(|v| v.parse().unwrap())
}

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

    let text = telemetry.encode();
    let labels = "receiver=\"webhook/flagsmith\",transport=\"http\"";
    for (name, labels, want) in [
        (
            "otelcol_receiver_accepted_log_records_total",
            labels.to_owned(),
            1,
        ),
        (
            "otelcol_receiver_refused_log_records_total",
            labels.to_owned(),
            1,
        ),
        (
            "auditcol_receiver_refused_requests_total",
            format!("reason=\"signature\",{labels}"),
            1,
        ),
        (
            "auditcol_receiver_refused_requests_total",
            format!("reason=\"invalid\",{labels}"),
            1,
        ),
        (
            "auditcol_receiver_refused_requests_total",
            format!("reason=\"backpressure\",{labels}"),
            1,
        ),
        (
            "auditcol_receiver_dropped_log_records_total",
            format!("reason=\"non_audit\",{labels}"),
            1,
        ),
    ] {
        assert_eq!(
            value(&text, name, &labels),
            Some(want),
            "{name}{{{labels}}} in\n{text}"
        );
    }
    assert_eq!(running.receiver.record_counts(), (1, 1));
}
