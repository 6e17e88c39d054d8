//! Audit events → OpenTelemetry log records, through any `Logger`.

use std::time::{Duration, UNIX_EPOCH};

use auditcol_model::conventions::{
    AUDIT_ACTION, AUDIT_ID, AUDIT_STATUS, AUDIT_TYPE, AUDIT_VERSION, SEVERITY_INFO,
    severity_for_status,
};
use opentelemetry::InstrumentationScope;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::{Key, StringValue};

use crate::AuditEvent;

/// The instrumentation scope of the records this crate emits.
pub const SCOPE_NAME: &str = "auditcol-sdk";

/// Emits [`AuditEvent`]s through an OpenTelemetry [`Logger`], following
/// auditcol's audit ⇄ OTLP contract (DESIGN.md §2):
///
/// | audit event | log record |
/// |---|---|
/// | type, action | attributes `audit.type`, `audit.action` (lower case) |
/// | — | event name `audit.<type>.<action>` |
/// | version | attribute `audit.version` |
/// | status | attribute `audit.status`; severity INFO (9) for `success`, WARN (13) otherwise |
/// | actor field `<k>` | attribute `audit.actor.<k>` (string) |
/// | payload | body, structured: objects → map, arrays → list, integers → int, other numbers → double, strings, booleans; `null` members and elements left out, a `null` payload sends no body |
/// | timestamp | timestamp (`time_unix_nano`); unset when 0 (unknown) |
/// | id | attribute `audit.id`, when set |
///
/// Use it with a logger provider you already have; its processors and
/// exporters decide where the records go, and you flush and shut it down as
/// usual. (To send to an endpoint and learn whether the events arrived, use
/// [`AuditSender`](crate::AuditSender).)
///
/// ```
/// use auditcol_sdk::{AuditEvent, AuditLogger};
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let provider = SdkLoggerProvider::builder().build(); // add your exporter here
/// let audit = AuditLogger::from_provider(&provider);
/// audit.emit(&AuditEvent::builder("flag", "updated").actor("email", "kyle@example.com").build()?);
/// provider.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AuditLogger<L: Logger> {
    logger: L,
}

impl<L: Logger> AuditLogger<L> {
    /// Emits through `logger`.
    pub fn new(logger: L) -> Self {
        Self { logger }
    }

    /// Emits through a logger of `provider` with instrumentation scope
    /// `auditcol-sdk` (and this crate's version).
    pub fn from_provider<P: LoggerProvider<Logger = L>>(provider: &P) -> Self {
        let scope = InstrumentationScope::builder(SCOPE_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Self::new(provider.logger_with_scope(scope))
    }

    /// The logger events are emitted through.
    pub fn logger(&self) -> &L {
        &self.logger
    }

    /// Emits `event` as one log record. Like every OpenTelemetry logger call
    /// it does not fail: the processors decide when and whether it is sent.
    pub fn emit(&self, event: &AuditEvent) {
        let mut record = self.logger.create_log_record();
        fill_record(&mut record, event);
        self.logger.emit(record);
    }
}

/// Writes `event` into `record`, as the table on [`AuditLogger`] says.
pub(crate) fn fill_record(record: &mut impl LogRecord, event: &AuditEvent) {
    record.set_event_name(event.event_name());
    if event.timestamp_unix_nanos() != 0 {
        record.set_timestamp(UNIX_EPOCH + Duration::from_nanos(event.timestamp_unix_nanos()));
    }
    let (number, text) = severity_for_status(event.status());
    record.set_severity_number(if number == SEVERITY_INFO {
        Severity::Info
    } else {
        Severity::Warn
    });
    record.set_severity_text(text);
    if let Some(body) = json_to_any_value(event.payload()) {
        record.set_body(body);
    }
    record.add_attribute(AUDIT_TYPE, event.event_type().to_owned());
    record.add_attribute(AUDIT_ACTION, event.action().to_owned());
    record.add_attribute(AUDIT_VERSION, event.version().to_owned());
    record.add_attribute(AUDIT_STATUS, event.status().to_owned());
    for (field, value) in event.actor() {
        record.add_attribute(AuditEvent::actor_key(field), value.to_owned());
    }
    if let Some(id) = event.id() {
        record.add_attribute(AUDIT_ID, id.to_owned());
    }
}

/// A JSON value as an OpenTelemetry `AnyValue`; `None` for `null`.
///
/// Integers that fit an `i64` become `Int`, other numbers `Double` (the
/// rule of `auditcol_model::anyvalue::json_to_any`). The API has no empty
/// value, so `null` members and elements are left out.
pub(crate) fn json_to_any_value(json: &serde_json::Value) -> Option<AnyValue> {
    use serde_json::Value;
    Some(match json {
        Value::Null => return None,
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => AnyValue::String(StringValue::from(s.clone())),
        Value::Array(items) => AnyValue::ListAny(Box::new(
            items.iter().filter_map(json_to_any_value).collect(),
        )),
        Value::Object(members) => AnyValue::Map(Box::new(
            members
                .iter()
                .filter_map(|(k, v)| Some((Key::new(k.clone()), json_to_any_value(v)?)))
                .collect(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
    use serde_json::json;

    /// The records `events` become, through the SDK's in-memory exporter.
    fn emitted(events: &[AuditEvent]) -> Vec<SdkLogRecord> {
        let exporter = InMemoryLogExporter::default();
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let audit = AuditLogger::from_provider(&provider);
        for event in events {
            audit.emit(event);
        }
        let logs = exporter.get_emitted_logs().unwrap();
        assert!(logs.iter().all(|l| l.instrumentation.name() == SCOPE_NAME));
        logs.into_iter().map(|l| l.record).collect()
    }

    fn attribute<'a>(record: &'a SdkLogRecord, key: &str) -> Option<&'a AnyValue> {
        record
            .attributes_iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    fn string(s: &str) -> AnyValue {
        AnyValue::String(s.to_owned().into())
    }

    fn sample() -> AuditEvent {
        AuditEvent::builder("Flag", "Created")
            .actor("email", "a@b.c")
            .actor("authentication", "token")
            .actor("team", "core")
            .payload(json!({"key": "flipt", "enabled": true, "rollout": 0.5,
                            "rules": [{"rank": 1}, "x"], "gone": null}))
            .timestamp_unix_nanos(1_714_557_600_500_000_000)
            .id("0190e4a4-0000-7000-8000-000000000001")
            .build()
            .unwrap()
    }

    #[test]
    fn type_action_version_and_status_become_attributes() {
        let record = &emitted(&[sample()])[0];
        assert_eq!(attribute(record, "audit.type"), Some(&string("flag")));
        assert_eq!(attribute(record, "audit.action"), Some(&string("created")));
        assert_eq!(attribute(record, "audit.version"), Some(&string("0.2")));
        assert_eq!(attribute(record, "audit.status"), Some(&string("success")));
    }

    #[test]
    fn the_event_name_is_audit_type_action() {
        assert_eq!(
            emitted(&[sample()])[0].event_name(),
            Some("audit.flag.created")
        );
    }

    #[test]
    fn success_is_info_and_any_other_status_warn() {
        let denied = AuditEvent::builder("flag", "deleted")
            .status("denied")
            .build()
            .unwrap();
        let records = emitted(&[sample(), denied]);
        assert_eq!(records[0].severity_number(), Some(Severity::Info));
        assert_eq!(records[0].severity_text(), Some("INFO"));
        assert_eq!(records[1].severity_number(), Some(Severity::Warn));
        assert_eq!(records[1].severity_text(), Some("WARN"));
        assert_eq!(
            attribute(&records[1], "audit.status"),
            Some(&string("denied"))
        );
    }

    #[test]
    fn each_actor_field_becomes_a_string_attribute() {
        let record = &emitted(&[sample()])[0];
        let actor: Vec<(&str, &AnyValue)> = record
            .attributes_iter()
            .filter(|(k, _)| k.as_str().starts_with("audit.actor."))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        assert_eq!(
            actor,
            [
                ("audit.actor.authentication", &string("token")),
                ("audit.actor.email", &string("a@b.c")),
                ("audit.actor.team", &string("core")),
            ]
        );
    }

    #[test]
    fn the_timestamp_and_id_are_carried() {
        let record = &emitted(&[sample()])[0];
        assert_eq!(
            record.timestamp(),
            Some(UNIX_EPOCH + Duration::from_nanos(1_714_557_600_500_000_000))
        );
        assert_eq!(
            attribute(record, "audit.id"),
            Some(&string("0190e4a4-0000-7000-8000-000000000001"))
        );
    }

    #[test]
    fn an_unknown_timestamp_and_a_missing_id_are_left_unset() {
        let event = AuditEvent::builder("flag", "created")
            .timestamp_unix_nanos(0)
            .build()
            .unwrap();
        let record = &emitted(&[event])[0];
        assert_eq!(record.timestamp(), None);
        assert_eq!(attribute(record, "audit.id"), None);
        // The SDK stamps the observed time, which the collector falls back to.
        assert!(record.observed_timestamp().is_some());
    }

    #[test]
    fn the_payload_becomes_a_structured_body() {
        let record = &emitted(&[sample()])[0];
        let Some(AnyValue::Map(body)) = record.body() else {
            panic!("body is not a map: {:?}", record.body())
        };
        assert_eq!(body.get(&Key::new("key")), Some(&string("flipt")));
        assert_eq!(
            body.get(&Key::new("enabled")),
            Some(&AnyValue::Boolean(true))
        );
        assert_eq!(body.get(&Key::new("rollout")), Some(&AnyValue::Double(0.5)));
        let rank: AnyValue = [(Key::new("rank"), AnyValue::Int(1))].into_iter().collect();
        assert_eq!(
            body.get(&Key::new("rules")),
            Some(&AnyValue::ListAny(Box::new(vec![rank, string("x")])))
        );
        assert_eq!(
            body.get(&Key::new("gone")),
            None,
            "null members are left out"
        );
    }

    #[test]
    fn json_values_map_to_any_values() {
        assert_eq!(json_to_any_value(&json!(null)), None);
        assert_eq!(json_to_any_value(&json!(7)), Some(AnyValue::Int(7)));
        assert_eq!(json_to_any_value(&json!(-7)), Some(AnyValue::Int(-7)));
        assert_eq!(
            json_to_any_value(&json!(u64::MAX)),
            Some(AnyValue::Double(u64::MAX as f64))
        );
        assert_eq!(json_to_any_value(&json!(2.0)), Some(AnyValue::Double(2.0)));
        assert_eq!(json_to_any_value(&json!("s")), Some(string("s")));
        assert_eq!(
            json_to_any_value(&json!([1, null, 3])),
            Some(AnyValue::ListAny(Box::new(vec![
                AnyValue::Int(1),
                AnyValue::Int(3)
            ])))
        );
        assert_eq!(
            json_to_any_value(&json!({})),
            Some(AnyValue::Map(Box::default()))
        );
    }

    #[test]
    fn a_null_payload_sends_no_body() {
        let event = AuditEvent::builder("flag", "created").build().unwrap();
        assert_eq!(emitted(&[event])[0].body(), None);
    }
}
