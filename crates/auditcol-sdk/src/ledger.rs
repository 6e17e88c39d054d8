//! What became of every event an [`AuditSender`](crate::AuditSender) emitted.
//!
//! The OpenTelemetry batch processor exports on its own thread and logs
//! export errors instead of returning them (its `force_flush` reports at
//! most the last batch). So the exporter is wrapped in a
//! [`RecordingExporter`] that writes every outcome here, and a flush waits
//! until every event emitted before it is settled, then reports.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::logs::Severity;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};

/// How many distinct failure reasons a report keeps.
const MAX_REASONS: usize = 5;

/// Outcomes of emitted events, shared by the sender, the exporter wrapper
/// and the HTTP client.
#[derive(Debug, Default)]
pub(crate) struct DeliveryLedger {
    state: Mutex<LedgerState>,
    settled: Condvar,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// Events handed to the processor, ever.
    emitted: u64,
    /// Events whose export ended (delivered or not), ever.
    settled: u64,
    /// Since the last report: events the endpoint accepted.
    delivered: u64,
    /// Since the last report: events refused, undeliverable or dropped.
    failed: u64,
    /// Since the last report: why, first ones first, without repeats.
    reasons: Vec<String>,
    /// More failure reasons than [`MAX_REASONS`] since the last report.
    more_reasons: bool,
    /// What the HTTP client saw of the export in progress.
    transport: TransportNote,
}

/// The HTTP client's view of one export attempt: the official exporter
/// keeps only a status code, the client sees the collector's answer.
#[derive(Debug, Default)]
struct TransportNote {
    /// Why the last attempt failed, in the collector's words.
    failure: Option<String>,
    /// Records the endpoint rejected in an accepted request (OTLP partial success).
    rejected: Option<(u64, String)>,
}

/// The events settled since the last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settlement {
    pub delivered: u64,
    pub failed: u64,
    pub reasons: Vec<String>,
    pub more_reasons: bool,
    /// Events emitted before the report began and not settled by its deadline.
    pub unconfirmed: u64,
}

impl DeliveryLedger {
    fn state(&self) -> MutexGuard<'_, LedgerState> {
        // Every update leaves the counters consistent: a panic elsewhere
        // cannot leave them half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an event handed to the processor, unless `capacity` events are
    /// already waiting: the batch processor would drop it silently, so it is
    /// counted as failed here instead. Returns whether to hand it over.
    pub fn admit(&self, capacity: u64) -> bool {
        let mut state = self.state();
        if state.emitted - state.settled >= capacity {
            state.failed += 1;
            state.note_reason(format!(
                "dropped: {capacity} events were already waiting for export (flush more often or raise the queue size)"
            ));
            return false;
        }
        state.emitted += 1;
        true
    }

    /// Counts an event that was not handed over at all, with the reason.
    pub fn refuse(&self, reason: &str) {
        let mut state = self.state();
        state.failed += 1;
        state.note_reason(reason.to_owned());
    }

    /// Events emitted so far: a report waits for these.
    pub fn emitted(&self) -> u64 {
        self.state().emitted
    }

    /// The HTTP client saw this attempt fail, for this reason.
    pub fn note_transport_failure(&self, reason: String) {
        self.state().transport.failure = Some(reason);
    }

    /// The endpoint accepted the request but rejected `count` records.
    pub fn note_rejected(&self, count: u64, message: String) {
        self.state().transport.rejected = Some((count, message));
    }

    fn begin_export(&self) {
        self.state().transport = TransportNote::default();
    }

    /// Settles one export of `count` events that ended with `result`.
    fn settle(&self, count: u64, result: &OTelSdkResult) {
        let mut state = self.state();
        let note = std::mem::take(&mut state.transport);
        state.settled += count;
        match result {
            Ok(()) => {
                let (rejected, message) = note.rejected.unwrap_or_default();
                let rejected = rejected.min(count);
                state.delivered += count - rejected;
                if rejected > 0 {
                    state.failed += rejected;
                    let message = if message.is_empty() {
                        "no reason given".to_owned()
                    } else {
                        message
                    };
                    state.note_reason(format!(
                        "the endpoint rejected {rejected} of {count}: {message}"
                    ));
                }
            }
            Err(error) => {
                state.failed += count;
                let reason = note.failure.unwrap_or_else(|| describe(error));
                state.note_reason(reason);
            }
        }
        drop(state);
        self.settled.notify_all();
    }

    /// Waits until the events emitted before `emitted_before` are settled or
    /// `deadline` passes, then reports and resets what was settled since
    /// the last report.
    pub fn report(&self, emitted_before: u64, deadline: Instant) -> Settlement {
        let mut state = self.state();
        while state.settled < emitted_before {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .settled
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Settlement {
            delivered: std::mem::take(&mut state.delivered),
            failed: std::mem::take(&mut state.failed),
            reasons: std::mem::take(&mut state.reasons),
            more_reasons: std::mem::take(&mut state.more_reasons),
            unconfirmed: emitted_before.saturating_sub(state.settled),
        }
    }
}

impl LedgerState {
    fn note_reason(&mut self, reason: String) {
        if self.reasons.contains(&reason) {
            return;
        }
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason);
        } else {
            self.more_reasons = true;
        }
    }
}

/// The words of an SDK error, without its generic prefix.
fn describe(error: &OTelSdkError) -> String {
    match error {
        OTelSdkError::InternalFailure(reason) => without_repeats(reason),
        OTelSdkError::Timeout(after) => format!("no answer within {after:?}"),
        OTelSdkError::AlreadyShutdown => "the exporter is shut down".to_owned(),
    }
}

/// `a: b: b: c` as `a: b: c`: error chains often repeat a cause's text.
fn without_repeats(chain: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in chain.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// A [`LogExporter`] that records the outcome of every export of `inner` in
/// a [`DeliveryLedger`], and otherwise passes everything through.
#[derive(Debug)]
pub(crate) struct RecordingExporter<E> {
    inner: E,
    ledger: Arc<DeliveryLedger>,
}

impl<E: LogExporter> RecordingExporter<E> {
    pub fn new(inner: E, ledger: Arc<DeliveryLedger>) -> Self {
        Self { inner, ledger }
    }
}

impl<E: LogExporter> LogExporter for RecordingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let count = batch.iter().count() as u64;
        self.ledger.begin_export();
        let result = self.inner.export(batch).await;
        self.ledger.settle(count, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(reason: &str) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure(reason.to_owned()))
    }

    fn admitted(ledger: &DeliveryLedger, n: u64) {
        for _ in 0..n {
            assert!(ledger.admit(100));
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn a_report_counts_delivered_and_failed_events_and_resets() {
        let ledger = DeliveryLedger::default();
        admitted(&ledger, 5);
        ledger.settle(3, &Ok(()));
        ledger.settle(2, &failure("gRPC code: Unavailable"));
        let report = ledger.report(ledger.emitted(), soon());
        assert_eq!(
            report,
            Settlement {
                delivered: 3,
                failed: 2,
                reasons: vec!["gRPC code: Unavailable".into()],
                more_reasons: false,
                unconfirmed: 0
            }
        );
        let next = ledger.report(ledger.emitted(), soon());
        assert_eq!((next.delivered, next.failed), (0, 0));
        assert!(next.reasons.is_empty());
    }

    #[test]
    fn a_cause_repeated_in_an_error_chain_is_said_once() {
        assert_eq!(
            describe(&OTelSdkError::InternalFailure(
                "gRPC code: Unavailable: tcp connect error: tcp connect error: refused".into()
            )),
            "gRPC code: Unavailable: tcp connect error: refused"
        );
    }

    #[test]
    fn the_http_clients_words_replace_the_exporters() {
        let ledger = DeliveryLedger::default();
        admitted(&ledger, 1);
        ledger.begin_export();
        ledger.note_transport_failure("HTTP 400 Bad Request: payload too deep".into());
        ledger.settle(1, &failure("HTTP export failed with status code: 400"));
        let report = ledger.report(1, soon());
        assert_eq!(report.reasons, ["HTTP 400 Bad Request: payload too deep"]);
    }

    #[test]
    fn records_rejected_in_an_accepted_request_count_as_failed() {
        let ledger = DeliveryLedger::default();
        admitted(&ledger, 4);
        ledger.begin_export();
        ledger.note_rejected(1, "logRecords[2]: bad".into());
        ledger.settle(4, &Ok(()));
        let report = ledger.report(4, soon());
        assert_eq!((report.delivered, report.failed), (3, 1));
        assert_eq!(
            report.reasons,
            ["the endpoint rejected 1 of 4: logRecords[2]: bad"]
        );
    }

    #[test]
    fn events_past_the_queue_capacity_fail_instead_of_vanishing() {
        let ledger = DeliveryLedger::default();
        assert!(ledger.admit(2));
        assert!(ledger.admit(2));
        assert!(!ledger.admit(2));
        ledger.settle(2, &Ok(()));
        assert!(ledger.admit(2));
        let report = ledger.report(2, soon());
        assert_eq!((report.delivered, report.failed), (2, 1));
        assert!(report.reasons[0].starts_with("dropped: 2 events"));
    }

    #[test]
    fn a_report_waits_for_the_exports_in_flight() {
        let ledger = Arc::new(DeliveryLedger::default());
        admitted(&ledger, 2);
        let late = ledger.clone();
        let exporter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            late.settle(2, &Ok(()));
        });
        let report = ledger.report(2, Instant::now() + Duration::from_secs(30));
        exporter.join().unwrap();
        assert_eq!((report.delivered, report.unconfirmed), (2, 0));
    }

    #[test]
    fn a_report_past_its_deadline_names_what_never_settled() {
        let ledger = DeliveryLedger::default();
        admitted(&ledger, 2);
        ledger.settle(1, &Ok(()));
        let report = ledger.report(2, Instant::now());
        assert_eq!((report.delivered, report.unconfirmed), (1, 1));
    }

    #[test]
    fn repeated_reasons_are_kept_once_and_many_are_summarised() {
        let ledger = DeliveryLedger::default();
        admitted(&ledger, 8);
        ledger.settle(1, &failure("same"));
        ledger.settle(1, &failure("same"));
        for i in 0..6 {
            ledger.settle(1, &failure(&format!("reason {i}")));
        }
        let report = ledger.report(8, soon());
        assert_eq!(report.reasons.len(), MAX_REASONS);
        assert_eq!(report.reasons[0], "same");
        assert!(report.more_reasons);
    }
}
