//! Encoding a batch into the bytes of one write.

use std::io::Write;

use auditcol_core::{LogBatch, RecordRef};
use auditcol_model::AuditEvent;
use auditcol_model::timestamp::write_rfc3339;

use crate::config::Format;

/// Appends the lines of `batch` in `format` to `out`; returns how many
/// records were skipped (non-audit records in `json`).
pub fn encode_batch(batch: &LogBatch, format: Format, out: &mut Vec<u8>) -> usize {
    let mut skipped = 0;
    match format {
        Format::OtlpJson => {
            batch.write_otlp_json(out);
            out.push(b'\n');
        }
        Format::Json => {
            for record in batch.records() {
                if record.write_audit_json(out) {
                    out.push(b'\n');
                } else {
                    skipped += 1;
                }
            }
        }
        Format::Console => {
            let mut line = String::new();
            for record in batch.records() {
                line.clear();
                match record.to_audit_event() {
                    Some(event) => console_event(&mut line, &event),
                    None => console_other(&mut line, &record),
                }
                line.push('\n');
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    skipped
}

/// `<timestamp> <type>:<action> <status> actor: k=v ... payload: <json>`
fn console_event(line: &mut String, event: &AuditEvent) {
    write_rfc3339(line, event.timestamp);
    line.push(' ');
    line.push_str(&event.event_type);
    line.push(':');
    line.push_str(&event.action);
    line.push(' ');
    line.push_str(&event.status);
    line.push_str(" actor:");
    let actor = &event.metadata.actor;
    if actor.is_empty() {
        line.push_str(" -");
    }
    for (key, value) in actor.fields() {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        push_console_value(line, value);
    }
    line.push_str(" payload: ");
    line.push_str(&event.payload.to_string());
}

/// `<time> <severity> <body json>` for records that are not audit events.
fn console_other(line: &mut String, record: &RecordRef<'_>) {
    write_rfc3339(line, record.event_time_unix_nano());
    line.push(' ');
    line.push_str(severity_name(record.severity_number()));
    line.push(' ');
    line.push_str(&record.body_json().to_string());
}

/// Values with spaces, quotes or `=` are quoted (JSON string syntax) so the
/// line still splits into `key=value` pairs.
fn push_console_value(line: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
    if plain {
        line.push_str(value);
    } else {
        line.push_str(&serde_json::Value::from(value).to_string());
    }
}

/// The OTLP severity range a number falls in.
fn severity_name(number: i32) -> &'static str {
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

/// Writes `bytes` to standard output in one locked write.
pub(crate) fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_model::{LogRecord, ResourceLogs, ScopeLogs};

    const SEED: &str = r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"authentication":"none","ip":"172.17.0.1"}},"payload":{"key":"flipt"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#;

    fn seed_batch() -> LogBatch {
        let event: AuditEvent = serde_json::from_str(SEED).unwrap();
        LogBatch::from_events("flipt", [&event])
    }

    /// One record that is not an audit event: a plain log line.
    fn plain_log_batch() -> LogBatch {
        use auditcol_model::anyvalue::json_to_any;
        let record = LogRecord {
            time_unix_nano: 1_714_557_600_000_000_000,
            severity_number: 13,
            body: Some(json_to_any(&serde_json::json!("disk almost full"))),
            ..Default::default()
        };
        LogBatch::from_resource_logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    fn encode(batch: &LogBatch, format: Format) -> (String, usize) {
        let mut out = Vec::new();
        let skipped = encode_batch(batch, format, &mut out);
        (String::from_utf8(out).unwrap(), skipped)
    }

    #[test]
    fn json_writes_the_flipt_event_exactly() {
        let (text, skipped) = encode(&seed_batch(), Format::Json);
        assert_eq!(text, format!("{SEED}\n"));
        assert_eq!(skipped, 0);
    }

    #[test]
    fn json_skips_records_that_are_not_audit_events() {
        let mut batch = plain_log_batch();
        batch.merge(seed_batch());
        let (text, skipped) = encode(&batch, Format::Json);
        assert_eq!(text, format!("{SEED}\n"));
        assert_eq!(skipped, 1);
    }

    #[test]
    fn console_writes_one_readable_line_per_event() {
        let (text, _) = encode(&seed_batch(), Format::Console);
        assert_eq!(
            text,
            "2024-05-01T10:00:00Z flag:created success actor: authentication=none ip=172.17.0.1 payload: {\"key\":\"flipt\"}\n"
        );
    }

    #[test]
    fn console_marks_an_empty_actor_and_quotes_values_with_spaces() {
        let mut event = AuditEvent::new("segment", "deleted");
        event.timestamp = 1_714_557_600_500_000_000;
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Console);
        assert_eq!(
            text,
            "2024-05-01T10:00:00.5Z segment:deleted success actor: - payload: null\n"
        );
        event.metadata.actor.name = Some("Jane Doe".into());
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Console);
        assert!(text.contains("actor: name=\"Jane Doe\" payload"), "{text}");
    }

    #[test]
    fn console_writes_other_records_as_time_severity_body() {
        let (text, skipped) = encode(&plain_log_batch(), Format::Console);
        assert_eq!(text, "2024-05-01T10:00:00Z WARN \"disk almost full\"\n");
        assert_eq!(skipped, 0);
    }

    #[test]
    fn otlp_json_writes_one_request_per_batch_on_one_line() {
        let (text, _) = encode(&seed_batch(), Format::OtlpJson);
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        assert!(text.starts_with(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"flipt"}}]"#), "{text}");
        let decoded = LogBatch::decode_json(text.trim_end().as_bytes()).unwrap();
        assert!(decoded == seed_batch());
    }

    #[test]
    fn otlp_json_keeps_records_that_are_not_audit_events() {
        let (text, skipped) = encode(&plain_log_batch(), Format::OtlpJson);
        assert_eq!(skipped, 0);
        assert!(
            text.contains(r#""body":{"stringValue":"disk almost full"}"#),
            "{text}"
        );
    }
}
