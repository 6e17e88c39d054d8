//! A request body → the audit events it carries, per format, or the first
//! error with its path (`events[3].timestamp: not RFC 3339 ...`).
//!
//! Both formats end in the model's [`AuditEvent`]; the events then enter
//! the pipeline through the core path every receiver uses
//! (`LogBatch::try_from_events_with_attributes`, `prepare_ingest`), so the
//! audit ⇄ OTLP mapping exists once.

use auditcol_core::model::timestamp::{TimestampError, parse_rfc3339};
use auditcol_core::model::{AuditEvent, is_valid_name};
use serde_json::{Map, Value};

use crate::body::{BodyKind, EventError, event_path, kind_of, parse_events};
use crate::config::Format;
use crate::{audit_event, flagsmith};

/// An event ready for the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// Its index in the request (`events[i]`), for error messages.
    pub index: usize,
    /// The event.
    pub event: AuditEvent,
    /// Attributes the event model has no field for: `audit.id` from the
    /// source, `flagsmith.*` ids.
    pub attributes: Vec<(&'static str, String)>,
}

/// The events of one request.
#[derive(Debug, Default, PartialEq)]
pub struct DecodedRequest {
    /// The audit events, in request order.
    pub events: Vec<ReceivedEvent>,
    /// Entries acknowledged but not kept: Flagsmith webhook events other
    /// than audit-log entries.
    pub ignored: usize,
}

/// Decodes a whole request body; one bad event refuses the request.
pub fn decode_request(
    format: Format,
    kind: BodyKind,
    body: &[u8],
) -> Result<DecodedRequest, EventError> {
    let values = parse_events(body, kind)?;
    let mut decoded = DecodedRequest {
        events: Vec::with_capacity(values.len()),
        ignored: 0,
    };
    for (index, value) in values.into_iter().enumerate() {
        let at = event_path(index);
        match format {
            Format::Audit => decoded.events.push(ReceivedEvent {
                index,
                event: audit_event::decode(value, &at)?,
                attributes: Vec::new(),
            }),
            Format::Flagsmith => match flagsmith::decode(value, &at)? {
                Some((event, attributes)) => decoded.events.push(ReceivedEvent {
                    index,
                    event,
                    attributes,
                }),
                None => decoded.ignored += 1,
            },
        }
    }
    Ok(decoded)
}

/// `base.key`.
pub(crate) fn field_path(base: &str, key: &str) -> String {
    format!("{base}.{key}")
}

/// The object `value` is, or an error at `at` saying what it is instead.
pub(crate) fn expect_object(
    value: Value,
    at: &str,
    what: &str,
) -> Result<Map<String, Value>, EventError> {
    match value {
        Value::Object(object) => Ok(object),
        other => Err(EventError::at(
            at,
            format!("expected a JSON object ({what}), got {}", kind_of(&other)),
        )),
    }
}

/// A required string field.
pub(crate) fn required_str<'v>(
    object: &'v Map<String, Value>,
    base: &str,
    key: &str,
) -> Result<&'v str, EventError> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(EventError::at(
            field_path(base, key),
            "missing: the field is required",
        )),
        Some(other) => Err(EventError::at(
            field_path(base, key),
            format!("expected a string, got {}", kind_of(other)),
        )),
    }
}

/// An optional string field; `null` is absent.
pub(crate) fn optional_str<'v>(
    object: &'v Map<String, Value>,
    base: &str,
    key: &str,
) -> Result<Option<&'v str>, EventError> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(EventError::at(
            field_path(base, key),
            format!("expected a string, got {}", kind_of(other)),
        )),
    }
}

/// A required RFC 3339 timestamp, in nanoseconds since the epoch.
pub(crate) fn required_timestamp(
    object: &Map<String, Value>,
    base: &str,
    key: &str,
) -> Result<u64, EventError> {
    let text = required_str(object, base, key)?;
    parse_rfc3339(text).map_err(|e| {
        let reason = match e {
            TimestampError::Invalid { value, .. } => {
                format!("not RFC 3339: `{value}` (write e.g. `2024-05-01T10:00:00Z`)")
            }
            TimestampError::OutOfRange { value } => {
                format!("`{value}` is outside the range OTLP can carry (1970-01-01 to 2554-07-21)")
            }
        };
        EventError::at(field_path(base, key), reason)
    })
}

/// A required noun or verb.
pub(crate) fn required_name<'v>(
    object: &'v Map<String, Value>,
    base: &str,
    key: &str,
) -> Result<&'v str, EventError> {
    let name = required_str(object, base, key)?;
    if !is_valid_name(name) {
        return Err(EventError::at(
            field_path(base, key),
            format!("`{name}` is not a valid name: use letters, digits, `_`, `-` and `.`"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_of_a_request_is_decoded_in_order() {
        let body = br#"[
            {"version":"0.2","type":"flag","action":"created","timestamp":"2024-05-01T10:00:00Z"},
            {"version":"0.2","type":"segment","action":"deleted","timestamp":"2024-05-01T10:00:01Z"}
        ]"#;
        let decoded = decode_request(Format::Audit, BodyKind::Json, body).unwrap();
        let nouns: Vec<_> = decoded
            .events
            .iter()
            .map(|e| (e.index, e.event.event_type.as_str()))
            .collect();
        assert_eq!(nouns, [(0, "flag"), (1, "segment")]);
        assert_eq!(decoded.ignored, 0);
    }

    #[test]
    fn the_first_bad_event_refuses_the_request_with_its_index() {
        let body = concat!(
            r#"{"version":"0.2","type":"flag","action":"created","timestamp":"2024-05-01T10:00:00Z"}"#,
            "\n",
            r#"{"version":"0.2","type":"flag","action":"created","timestamp":"2024-05-01T10:00:00Z"}"#,
            "\n",
            r#"{"version":"0.2","type":"flag","action":"created","timestamp":"2024-05-01T10:00:00Z"}"#,
            "\n",
            r#"{"version":"0.2","type":"flag","action":"created","timestamp":"yesterday"}"#,
        );
        let err = decode_request(Format::Audit, BodyKind::Ndjson, body.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "events[3].timestamp: not RFC 3339: `yesterday` (write e.g. `2024-05-01T10:00:00Z`)"
        );
    }

    #[test]
    fn flagsmith_events_that_are_not_audit_log_entries_are_counted_as_ignored() {
        let body = br#"[
            {"event_type":"FLAG_UPDATED","data":{"new_state":{}}},
            {"created_date":"2024-05-01T10:00:00Z","log":"Segment deleted: beta","author":null,"related_object_type":"SEGMENT"}
        ]"#;
        let decoded = decode_request(Format::Flagsmith, BodyKind::Json, body).unwrap();
        assert_eq!(decoded.ignored, 1);
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.events[0].index, 1, "the index in the request");
    }
}
