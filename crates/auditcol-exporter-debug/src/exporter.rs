//! [`DebugExporter`]: writes what it is given to the collector's log.

use std::sync::Mutex;

use async_trait::async_trait;
use auditcol_core::model::anyvalue::view_to_json;
use auditcol_core::{Component, Exporter, LogBatch, LogsConsumer, PipelineError, RecordRef};
use tokio::time::Instant;

use crate::config::{DebugExporterConfig, Verbosity};

/// Writes batches to the log at INFO, as `verbosity` says, sampled.
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
    sampling_initial: u64,
    sampling_thereafter: u64,
    /// The current one-second window and the batches seen in it.
    window: Mutex<(Instant, u64)>,
}

impl DebugExporter {
    /// An exporter for a validated `config`.
    pub fn new(id: impl Into<String>, config: &DebugExporterConfig) -> Self {
        Self {
            id: id.into(),
            verbosity: config.verbosity,
            sampling_initial: config.sampling_initial,
            sampling_thereafter: config.sampling_thereafter,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Whether this batch is written: the first `sampling_initial` of each
    /// second, then every `sampling_thereafter`-th.
    fn sampled(&self) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(window.0).as_secs() >= 1 {
            *window = (now, 0);
        }
        window.1 += 1;
        let n = window.1;
        n <= self.sampling_initial
            || (n - self.sampling_initial).is_multiple_of(self.sampling_thereafter)
    }

    /// The lines for `batch` at this exporter's verbosity.
    pub fn lines(&self, batch: &LogBatch) -> Vec<String> {
        match self.verbosity {
            Verbosity::Basic => vec![format!("log records: {}", batch.len())],
            Verbosity::Normal => batch.records().map(|r| record_line(&r)).collect(),
            Verbosity::Detailed => {
                let mut json = Vec::new();
                match batch.write_otlp_json(&mut json) {
                    Ok(()) => vec![String::from_utf8_lossy(&json).into_owned()],
                    Err(e) => vec![format!("cannot write the batch as OTLP/JSON: {e}")],
                }
            }
        }
    }
}

/// One record as one line: an audit event's Flipt JSON; otherwise the event
/// name, body and attributes, each JSON-encoded.
fn record_line(record: &RecordRef<'_>) -> String {
    let mut json = Vec::new();
    if record.write_audit_json(&mut json) {
        return String::from_utf8_lossy(&json).into_owned();
    }
    let attributes: serde_json::Map<String, serde_json::Value> = record
        .view()
        .attributes()
        .map(|kv| (kv.key.to_owned(), view_to_json(kv.value)))
        .collect();
    format!(
        "event_name={} body={} attributes={}",
        serde_json::Value::from(record.event_name()),
        record.body_json(),
        serde_json::Value::Object(attributes)
    )
}

#[async_trait]
impl Component for DebugExporter {}

#[async_trait]
impl LogsConsumer for DebugExporter {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        if batch.is_empty() || !self.sampled() {
            return Ok(());
        }
        for line in self.lines(&batch) {
            tracing::info!(exporter = %self.id, "{line}");
        }
        Ok(())
    }
}

impl Exporter for DebugExporter {}

#[cfg(test)]
mod tests {
    use auditcol_core::config::parse_component_config;
    use auditcol_core::model::AuditEvent;
    use serde_json::json;

    use super::*;

    fn exporter(config: serde_json::Value) -> DebugExporter {
        let config: DebugExporterConfig = parse_component_config(&config).unwrap();
        DebugExporter::new("debug", &config)
    }

    #[test]
    fn basic_is_one_line_per_batch_with_the_count() {
        let lines = exporter(json!({})).lines(&LogBatch::sample_audit(3));
        assert_eq!(lines, ["log records: 3"]);
    }

    #[test]
    fn normal_is_one_line_per_record_that_no_record_can_break() {
        let mut event = AuditEvent::new("flag", "created");
        event.payload = json!({"key": "x\n2024-01-01T00:00:00Z flag:deleted success\u{1b}[31m"});
        event.metadata.actor.email = Some("eve\r\n@example.com".into());
        let batch = LogBatch::from_events("test", [&event]);
        let lines = exporter(json!({"verbosity": "normal"})).lines(&batch);
        assert_eq!(lines.len(), 1);
        assert!(
            !lines[0].contains('\n') && !lines[0].contains('\r') && !lines[0].contains('\u{1b}')
        );
        let back: AuditEvent = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(back.payload, event.payload);
        assert_eq!(back.metadata.actor.email, event.metadata.actor.email);
    }

    #[test]
    fn normal_shows_records_that_are_not_audit_events() {
        let lines = exporter(json!({"verbosity": "normal"})).lines(&LogBatch::sample_varied());
        assert_eq!(lines.len(), 2);
        let plain = lines.iter().find(|l| l.starts_with("event_name=")).unwrap();
        assert!(plain.contains("body={"), "{plain}");
        assert!(plain.contains("attributes={"), "{plain}");
    }

    #[test]
    fn detailed_is_the_whole_request_as_otlp_json() {
        let batch = LogBatch::sample_varied();
        let lines = exporter(json!({"verbosity": "detailed"})).lines(&batch);
        assert_eq!(lines.len(), 1);
        let decoded = LogBatch::decode_json(lines[0].as_bytes()).unwrap().batch;
        assert_eq!(decoded.encode_protobuf(), batch.encode_protobuf());
    }

    #[test]
    fn sampling_writes_the_first_batches_of_a_second_then_every_nth() {
        let e = exporter(json!({"sampling_initial": 2, "sampling_thereafter": 3}));
        let written: Vec<bool> = (0..8).map(|_| e.sampled()).collect();
        assert_eq!(
            written,
            [true, true, false, false, true, false, false, true]
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = parse_component_config::<DebugExporterConfig>(&json!({"sampling_thereafter": 0}))
            .unwrap_err();
        assert_eq!(err.path, "sampling_thereafter");
        let err = parse_component_config::<DebugExporterConfig>(&json!({"verbosity": "loud"}))
            .unwrap_err();
        assert_eq!(err.path, "verbosity");
    }

    #[tokio::test]
    async fn consume_writes_to_the_log() {
        let (log, _guard) = auditcol_testkit::CapturedLog::start();
        let e = exporter(json!({"verbosity": "normal"}));
        e.consume(LogBatch::sample_audit(1)).await.unwrap();
        assert!(
            log.text().contains(
                r#"INFO auditcol_exporter_debug::exporter: {"version":"0.2","type":"flag""#
            ),
            "{}",
            log.text()
        );
    }
}
