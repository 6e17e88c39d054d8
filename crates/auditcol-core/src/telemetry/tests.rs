use super::*;
use crate::{ComponentId, PipelineError};

const SENT: MetricSpec = MetricSpec::counter("test_sent", "Sent", MetricsLevel::Basic);
const DETAIL: MetricSpec = MetricSpec::counter("test_detail", "Detail", MetricsLevel::Normal);
const LAG: MetricSpec = MetricSpec::gauge("test_lag", "Lag", MetricsLevel::Basic);

fn id(text: &str) -> ComponentId {
    ComponentId::parse(text).unwrap()
}

/// The sample lines of `text` (no comments).
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn counters_are_exposed_with_total_and_sorted_labels() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let c = telemetry.counter(&SENT, &[("transport", "grpc"), ("receiver", "otlp")]);
    c.inc_by(5);
    let text = telemetry.encode();
    assert!(text.contains("# TYPE test_sent counter\n"), "{text}");
    assert!(
        samples(&text).contains(&"test_sent_total{receiver=\"otlp\",transport=\"grpc\"} 5"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn asking_twice_for_one_series_gives_one_counter() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let a = telemetry.counter(&SENT, &[("exporter", "file")]);
    let b = telemetry.counter(&SENT, &[("exporter", "file")]);
    a.inc();
    b.inc();
    assert_eq!(a.get(), 2);
    let other = telemetry.counter(&SENT, &[("exporter", "kafka")]);
    assert_eq!(other.get(), 0);
}

#[test]
fn metrics_above_the_level_count_but_are_not_exposed() {
    let telemetry = Telemetry::new(MetricsLevel::Basic);
    let detail = telemetry.counter(&DETAIL, &[("exporter", "file")]);
    detail.inc();
    assert_eq!(detail.get(), 1);
    assert!(!telemetry.encode().contains("test_detail"));
    assert_eq!(telemetry.registered_names(), Vec::<&str>::new());
}

#[test]
fn disabled_telemetry_hands_out_detached_handles() {
    let telemetry = Telemetry::disabled();
    let a = telemetry.counter(&SENT, &[("exporter", "file")]);
    let b = telemetry.counter(&SENT, &[("exporter", "file")]);
    a.inc();
    assert_eq!(
        (a.get(), b.get()),
        (1, 0),
        "no sharing between components built apart"
    );
    assert_eq!(telemetry.encode(), "# EOF\n");
}

#[test]
fn target_info_names_the_service() {
    let text = Telemetry::new(MetricsLevel::Basic).encode();
    let line = samples(&text)
        .into_iter()
        .find(|l| l.starts_with("target_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("service_name=\"auditcol\""), "{line}");
    assert!(line.contains(&format!(
        "service_version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(line.contains("service_instance_id=\""), "{line}");
    assert!(line.ends_with(" 1"), "{line}");
}

#[test]
fn observed_values_are_read_at_scrape_time_and_skipped_when_absent() {
    let telemetry = Telemetry::new(MetricsLevel::Basic);
    let value = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let present = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (v, p) = (value.clone(), present.clone());
    telemetry.observe(
        &LAG,
        &[("exporter", "file")],
        Box::new(move || {
            p.load(std::sync::atomic::Ordering::SeqCst)
                .then(|| v.load(std::sync::atomic::Ordering::SeqCst))
        }),
    );
    assert!(!telemetry.encode().contains("test_lag"));
    present.store(true, std::sync::atomic::Ordering::SeqCst);
    value.store(7, std::sync::atomic::Ordering::SeqCst);
    let text = telemetry.encode();
    assert!(text.contains("# TYPE test_lag gauge\n"), "{text}");
    assert!(
        samples(&text).contains(&"test_lag{exporter=\"file\"} 7"),
        "{text}"
    );
    value.store(3, std::sync::atomic::Ordering::SeqCst);
    assert!(samples(&telemetry.encode()).contains(&"test_lag{exporter=\"file\"} 3"));
}

#[test]
fn receiver_refusals_count_requests_by_reason_and_records() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let receiver = telemetry.receiver(&id("otlp"), "http");
    receiver.accepted(10);
    receiver.refused_request(RefusalReason::Invalid, 2, None, &"bad");
    receiver.refused_request(RefusalReason::TooLarge, 0, None, &"big");
    receiver.refused_records(RefusalReason::Invalid, 1, None, &"one bad record");
    let text = telemetry.encode();
    let lines = samples(&text);
    for expected in [
        "otelcol_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"http\"} 10",
        "otelcol_receiver_refused_log_records_total{receiver=\"otlp\",transport=\"http\"} 3",
        "auditcol_receiver_refused_requests_total{reason=\"invalid\",receiver=\"otlp\",transport=\"http\"} 1",
        "auditcol_receiver_refused_requests_total{reason=\"too_large\",receiver=\"otlp\",transport=\"http\"} 1",
    ] {
        assert!(lines.contains(&expected), "{expected} in\n{text}");
    }
    // Reasons that never happened have no series.
    assert!(!text.contains("reason=\"signature\""), "{text}");
}

#[test]
fn pipeline_refusals_map_to_reasons() {
    assert_eq!(
        RefusalReason::of(&PipelineError::permanent("x")),
        RefusalReason::Rejected
    );
    assert_eq!(
        RefusalReason::of(&PipelineError::backpressure("x", None)),
        RefusalReason::Backpressure
    );
    assert_eq!(
        RefusalReason::of(&PipelineError::retryable("x")),
        RefusalReason::Unavailable
    );
}

#[test]
fn processor_and_exporter_series_carry_the_collectors_labels() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let (incoming, outgoing) = telemetry.processor_items(&id("filter/flags"));
    incoming.inc_by(4);
    outgoing.inc_by(3);
    telemetry
        .processor_drops(&id("filter/flags"), DropReason::NotIncluded)
        .add(1, &"x");
    telemetry.exporter(&id("file")).sent.inc_by(3);
    telemetry
        .exporter_drops(&id("file"), DropReason::NonAudit)
        .add(2, &"x");
    let text = telemetry.encode();
    let lines = samples(&text);
    for expected in [
        "otelcol_processor_incoming_items_total{otel_signal=\"logs\",processor=\"filter/flags\"} 4",
        "otelcol_processor_outgoing_items_total{otel_signal=\"logs\",processor=\"filter/flags\"} 3",
        "auditcol_processor_dropped_log_records_total{processor=\"filter/flags\",reason=\"not_included\"} 1",
        "otelcol_exporter_sent_log_records_total{exporter=\"file\"} 3",
        "otelcol_exporter_send_failed_log_records_total{exporter=\"file\"} 0",
        "otelcol_exporter_enqueue_failed_log_records_total{exporter=\"file\"} 0",
        "auditcol_exporter_dropped_log_records_total{exporter=\"file\",reason=\"non_audit\"} 2",
    ] {
        assert!(lines.contains(&expected), "{expected} in\n{text}");
    }
}

#[test]
fn queue_gauges_are_labelled_with_the_data_type() {
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    telemetry.observe_exporter_queue(&id("file"), || Some((2, 1000)), || None);
    let text = telemetry.encode();
    let lines = samples(&text);
    assert!(
        lines.contains(&"otelcol_exporter_queue_size{data_type=\"logs\",exporter=\"file\"} 2"),
        "{text}"
    );
    assert!(
        lines.contains(
            &"otelcol_exporter_queue_capacity{data_type=\"logs\",exporter=\"file\"} 1000"
        ),
        "{text}"
    );
    assert!(
        !text.contains("auditcol_exporter_persistent_queue_fsyncs"),
        "memory queue: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn summaries_of_every_log_are_flushed_together() {
    let telemetry = Telemetry::with_log_interval(MetricsLevel::Normal, Duration::from_secs(10));
    let a = telemetry.rate_limited_log(
        LogLevel::Warn,
        "refused a request",
        "receivers::otlp (http)",
        "invalid",
    );
    let b =
        telemetry.rate_limited_log(LogLevel::Info, "dropped", "processors::filter", "non_audit");
    for log in [&a, &b] {
        log.record(1, None, &"first");
        log.record(1, None, &"second");
    }
    telemetry.flush_logs(false);
    assert_eq!((a.pending(), b.pending()), ((1, 1), (1, 1)), "not due yet");
    tokio::time::advance(Duration::from_secs(10)).await;
    telemetry.flush_logs(false);
    assert_eq!((a.pending(), b.pending()), ((0, 0), (0, 0)));
    a.record(1, None, &"third");
    telemetry.flush_logs(true);
    assert_eq!(a.pending(), (0, 0), "flushed at shutdown, due or not");
}
