//! What an OTLP export response says besides success: the records the
//! server rejected for good (`partial_success`). Read by the OTLP exporters,
//! which log and count them the same way.

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;

/// Records the server rejected for good, and why, from a successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartialSuccess {
    /// `rejected_log_records`.
    pub rejected: i64,
    /// `error_message`.
    pub message: String,
}

/// Reads the `partial_success` of a protobuf `ExportLogsServiceResponse`;
/// an empty or undecodable body is a full success.
pub fn partial_success_proto(body: &[u8]) -> PartialSuccess {
    <ExportLogsServiceResponse as prost::Message>::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map(|p| PartialSuccess {
            rejected: p.rejected_log_records,
            message: p.error_message,
        })
        .unwrap_or_default()
}

/// Reads the `partialSuccess` of an OTLP/JSON `ExportLogsServiceResponse`
/// (the count may be written as a number or, as int64 in JSON, a string).
pub fn partial_success_json(body: &[u8]) -> PartialSuccess {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return PartialSuccess::default();
    };
    let Some(partial) = value
        .get("partialSuccess")
        .or_else(|| value.get("partial_success"))
    else {
        return PartialSuccess::default();
    };
    let count = partial
        .get("rejectedLogRecords")
        .or_else(|| partial.get("rejected_log_records"));
    let rejected = match count {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let message = partial
        .get("errorMessage")
        .or_else(|| partial.get("error_message"))
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    PartialSuccess { rejected, message }
}

/// Counts the records servers rejected in partial successes, and logs each
/// partial success at WARN.
#[derive(Debug, Default)]
pub struct RejectedRecords(AtomicU64);

impl RejectedRecords {
    /// Logs and counts `partial` when it rejected records; the batch is
    /// delivered all the same (the rejection is for good, retrying cannot
    /// help).
    /// `batch` is what was sent: the server does not say which records it
    /// rejected, so the line names the batch's events (`audit_ids`).
    pub fn note(&self, exporter: &str, partial: &PartialSuccess, batch: &crate::LogBatch) {
        if partial.rejected > 0 {
            self.0
                .fetch_add(partial.rejected.unsigned_abs(), Ordering::Relaxed);
            tracing::warn!(
                exporter,
                rejected = partial.rejected,
                message = %partial.message,
                audit_ids = %crate::exporterhelper::audit_ids(batch),
                "the server accepted the batch but rejected some records for good"
            );
        }
    }

    /// Records rejected so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_success_is_read_from_both_encodings() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let response = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        };
        let expected = PartialSuccess {
            rejected: 2,
            message: "too old".into(),
        };
        assert_eq!(
            partial_success_proto(&prost::Message::encode_to_vec(&response)),
            expected
        );
        assert_eq!(partial_success_proto(b""), PartialSuccess::default());
        for body in [
            r#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"too old"}}"#,
            r#"{"partialSuccess":{"rejectedLogRecords":2,"errorMessage":"too old"}}"#,
        ] {
            assert_eq!(partial_success_json(body.as_bytes()), expected, "{body}");
        }
        assert_eq!(partial_success_json(b"{}"), PartialSuccess::default());
        assert_eq!(partial_success_json(b""), PartialSuccess::default());
    }

    #[test]
    fn only_rejections_are_counted_and_the_log_names_the_batchs_events() {
        let (log, _guard) = auditcol_testkit::CapturedLog::start();
        let mut batch = crate::LogBatch::sample_audit(2);
        batch.prepare_ingest(1, "test");
        let ids: Vec<String> = batch
            .records()
            .map(|r| r.audit_id().expect("stamped").to_owned())
            .collect();
        let counter = RejectedRecords::default();
        counter.note("e", &PartialSuccess::default(), &batch);
        assert_eq!(log.text(), "", "nothing rejected, nothing logged");
        let partial = PartialSuccess {
            rejected: 3,
            message: "too old".into(),
        };
        counter.note("e", &partial, &batch);
        counter.note("e", &partial, &batch);
        assert_eq!(counter.get(), 6);
        let text = log.text();
        assert!(
            text.contains(&format!("audit_ids={},{}", ids[0], ids[1])),
            "{text}"
        );
    }
}
