//! Encoding a batch into the bytes of one write.

use std::io::Write;

use auditcol_core::model::json::{AuditFields, write_str, write_value};
use auditcol_core::model::timestamp::write_rfc3339_millis_bytes;
use auditcol_core::model::view::AnyValueView;
use auditcol_core::{LogBatch, RecordRef};

use crate::config::Format;

/// Appends the lines of `batch` in `format` to `out`; returns how many
/// records were skipped (non-audit records in `json`). Fails only when the
/// batch cannot be written as OTLP/JSON (a broken invariant: decode lets in
/// only records that can).
pub fn encode_batch(
    batch: &LogBatch,
    format: Format,
    out: &mut Vec<u8>,
) -> Result<usize, auditcol_core::otlp_json::JsonError> {
    let mut skipped = 0;
    match format {
        Format::OtlpJson => {
            batch.write_otlp_json(out)?;
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
            for record in batch.records() {
                let start = out.len();
                match record.audit_fields() {
                    Some(event) => console_event(out, &event),
                    None => console_other(out, &record),
                }
                escape_for_terminals(out, start);
                out.push(b'\n');
            }
        }
    }
    Ok(skipped)
}

/// `<timestamp> <type>:<action> <status> actor: k=v ... payload: <json>`
///
/// Whatever the event holds, this is one line: noun and verb are names
/// (checked at ingest), and every other text is written plain only when it
/// has no space, control character, quote or `=`, JSON-quoted otherwise.
fn console_event(out: &mut Vec<u8>, event: &AuditFields<'_>) {
    let (noun, verb) = event.audit.noun_verb().unwrap_or_default();
    write_rfc3339_millis_bytes(out, event.time);
    out.push(b' ');
    out.extend_from_slice(noun.as_bytes());
    out.push(b':');
    out.extend_from_slice(verb.as_bytes());
    out.push(b' ');
    push_console_text(out, event.audit.status.unwrap_or("success"));
    out.extend_from_slice(b" actor:");
    if event.actor().len() == 0 {
        out.extend_from_slice(b" -");
    }
    for (key, value) in event.actor() {
        out.push(b' ');
        push_console_text(out, key);
        out.push(b'=');
        match value {
            AnyValueView::String(s) => push_console_text(out, s),
            other => push_console_text(out, &auditcol_core::model::anyvalue::view_to_string(other)),
        }
    }
    out.extend_from_slice(b" payload: ");
    write_value(event.body, out);
}

/// `<time> <severity> <body json>` for records that are not audit events.
fn console_other(out: &mut Vec<u8>, record: &RecordRef<'_>) {
    write_rfc3339_millis_bytes(out, record.event_time_unix_nano());
    out.push(b' ');
    out.extend_from_slice(severity_name(record.severity_number()).as_bytes());
    out.push(b' ');
    write_value(record.body().unwrap_or(AnyValueView::Empty), out);
}

/// Text with spaces, quotes, `=` or control characters is quoted (JSON
/// string syntax) so the line still splits into `key=value` pairs and no
/// text can start a new line.
fn push_console_text(out: &mut Vec<u8>, text: &str) {
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
    if plain {
        out.extend_from_slice(text.as_bytes());
    } else {
        write_str(out, text);
    }
}

/// Console lines end up on terminals and in line-oriented viewers. JSON
/// escapes what is below U+0020, but leaves DEL, the C1 controls (U+0080 to
/// U+009F: U+009B starts an escape sequence on some terminals, U+0085 is a
/// line break) and the Unicode line and paragraph separators as they are:
/// here they are written `\u007f`, `\u009b`, `\u2028`. Outside JSON
/// strings a console line has none of them (plain text has no control
/// character or space), so the escaped line still reads as the same JSON.
fn escape_for_terminals(out: &mut Vec<u8>, start: usize) {
    let needs = |b: &u8| matches!(*b, 0x7f | 0xc2 | 0xe2);
    let Some(first) = out[start..].iter().position(needs) else {
        return;
    };
    let line = out.split_off(start + first);
    let text = String::from_utf8_lossy(&line);
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
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
    use auditcol_core::model::{
        AuditEvent, ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs,
    };

    const SEED: &str = r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"authentication":"none","ip":"172.17.0.1"}},"payload":{"key":"flipt"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#;

    fn seed_batch() -> LogBatch {
        let event: AuditEvent = serde_json::from_str(SEED).unwrap();
        LogBatch::from_events("flipt", [&event])
    }

    /// One record that is not an audit event: a plain log line.
    fn plain_log_batch() -> LogBatch {
        use auditcol_core::model::anyvalue::json_to_any;
        let record = LogRecord {
            time_unix_nano: 1_714_557_600_000_000_000,
            severity_number: 13,
            body: Some(json_to_any(&serde_json::json!("disk almost full"))),
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = prost::Message::encode_to_vec(&request);
        LogBatch::decode_protobuf(bytes.into()).unwrap().batch
    }

    fn encode(batch: &LogBatch, format: Format) -> (String, usize) {
        let mut out = Vec::new();
        let skipped = encode_batch(batch, format, &mut out).unwrap();
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
            "2024-05-01T10:00:00.000Z flag:created success actor: authentication=none ip=172.17.0.1 payload: {\"key\":\"flipt\"}\n"
        );
    }

    #[test]
    fn console_marks_an_empty_actor_and_quotes_values_with_spaces() {
        let mut event = AuditEvent::new("segment", "deleted");
        event.timestamp = 1_714_557_600_500_000_000;
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Console);
        assert_eq!(
            text,
            "2024-05-01T10:00:00.500Z segment:deleted success actor: - payload: null\n"
        );
        event.metadata.actor.name = Some("Jane Doe".into());
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Console);
        assert!(text.contains("actor: name=\"Jane Doe\" payload"), "{text}");
    }

    #[test]
    fn no_field_can_start_a_second_console_line() {
        let fake = "x\n2024-01-01T00:00:00Z flag:deleted success actor: email=admin@corp.example\r\u{1b}[31m";
        // Names (noun, verb, status, actor field names) cannot hold such
        // text: the record is refused before any exporter sees it.
        let mut bad_status = AuditEvent::new("flag", "created");
        bad_status.status = fake.into();
        let mut bad_actor_key = AuditEvent::new("flag", "created");
        bad_actor_key
            .metadata
            .actor
            .set(&format!("email{fake}"), "eve".into());
        for bad in [&bad_status, &bad_actor_key] {
            assert!(LogBatch::try_from_events("x", [bad]).is_err());
        }
        // Values can: they are quoted.
        let mut event = AuditEvent::new("flag", "created");
        event.metadata.actor.email = Some(fake.into());
        event.metadata.actor.set("team", fake.into());
        event.payload = serde_json::json!({ fake: fake });
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Console);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Json);
        assert_eq!(text.lines().count(), 1, "{text}");
        let back: AuditEvent = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, event);
    }

    /// Found by the `otlp_protobuf` fuzz target: DEL and the C1 controls
    /// went through to the console as they were (JSON leaves them), inside
    /// the quotes meant to keep a terminal from reading them.
    #[test]
    fn console_escapes_what_terminals_would_act_on() {
        let mut event = AuditEvent::new("flag", "created");
        event.metadata.actor.email = Some("\u{7f}\0@example.com".into());
        event.metadata.actor.set("team", "\u{9b}31m".into());
        event.payload = serde_json::json!({"k\u{85}": "a\u{2028}b\u{2029}c", "ok": "é—✓"});
        let (text, _) = encode(&LogBatch::from_events("x", [&event]), Format::Console);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text
                .trim_end_matches('\n')
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
            "{text:?}"
        );
        assert!(
            text.contains(r#"email="\u007f\u0000@example.com" team="\u009b31m""#),
            "{text}"
        );
        let payload = text.split_once("payload: ").unwrap().1.trim_end();
        assert_eq!(payload, r#"{"k\u0085":"a\u2028b\u2029c","ok":"é—✓"}"#);
        let parsed: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(parsed, event.payload, "still the same JSON");
    }

    #[test]
    fn console_writes_other_records_as_time_severity_body() {
        let (text, skipped) = encode(&plain_log_batch(), Format::Console);
        assert_eq!(text, "2024-05-01T10:00:00.000Z WARN \"disk almost full\"\n");
        assert_eq!(skipped, 0);
    }

    #[test]
    fn otlp_json_writes_one_request_per_batch_on_one_line() {
        let (text, _) = encode(&seed_batch(), Format::OtlpJson);
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        assert!(text.starts_with(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"flipt"}}]"#), "{text}");
        let decoded = LogBatch::decode_json(text.trim_end().as_bytes()).unwrap();
        assert!(decoded.batch == seed_batch());
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
