//! The audit event a service builds, checked against the audit conventions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auditcol_model::conventions::{AUDIT_ACTOR_PREFIX, event_name};
use auditcol_model::is_valid_name;

use crate::names::intern;

/// An audit event, checked and ready to emit: a Flipt v0.2 event
/// ([`auditcol_model::AuditEvent`]) plus an optional event id.
///
/// Build one with [`AuditEvent::builder`], or take one that arrived as Flipt
/// JSON with [`AuditEvent::from_flipt_json`]. Either way the names were
/// checked with the rule auditcol's receivers apply
/// ([`auditcol_model::is_valid_name`]: letters, digits, `_`, `-` and `.`,
/// not empty), so an event the SDK accepts is one the collector accepts.
/// The type and action are stored in lower case, as they travel.
///
/// ```
/// use auditcol_sdk::AuditEvent;
/// let event = AuditEvent::builder("flag", "created")
///     .actor("email", "kyle@example.com")
///     .payload(serde_json::json!({"key": "dark-mode", "enabled": true}))
///     .timestamp_unix_nanos(1_714_557_600_000_000_000)
///     .build()?;
/// assert_eq!(event.event_name(), "audit.flag.created");
/// // The line auditcol's `file` exporter writes for it (format `json`):
/// assert_eq!(
///     serde_json::to_string(event.as_flipt())?,
///     r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"email":"kyle@example.com"}},"payload":{"key":"dark-mode","enabled":true},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    event: auditcol_model::AuditEvent,
    id: Option<String>,
    /// `audit.<type>.<action>`, interned: the OpenTelemetry API takes event
    /// names as `&'static str`.
    event_name: &'static str,
}

/// Why an audit event was not built.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A type, action, status or actor field name breaks the naming rule.
    #[error(
        "{what} {value:?} is not a valid name: use letters, digits, `_`, `-` or `.`, and at least one character"
    )]
    InvalidName {
        /// What the name is: `type`, `action`, `status` or `actor field name`.
        what: &'static str,
        /// The name as given.
        value: String,
    },
    /// The event id is empty: downstream systems de-duplicate by it.
    #[error("the event id is empty: leave it unset and the collector assigns one")]
    EmptyId,
    /// The version is empty.
    #[error("the event version is empty (auditcol writes \"0.2\")")]
    EmptyVersion,
    /// The timestamp cannot be carried in OTLP's nanoseconds since 1970.
    #[error(
        "the timestamp is outside 1970-01-01 .. 2554-07-21: OTLP carries u64 nanoseconds since 1970"
    )]
    TimestampOutOfRange,
    /// The text is not a Flipt v0.2 audit event.
    #[error("not a Flipt v0.2 audit event: {0}")]
    NotAnAuditEvent(#[from] serde_json::Error),
}

impl AuditEvent {
    /// Starts an event: `event_type` is the noun (`flag`, `segment`, ...),
    /// `action` the verb (`created`, `updated`, ...). Status `success`,
    /// version `0.2`, no actor, no payload, timestamp now unless set.
    pub fn builder(event_type: impl Into<String>, action: impl Into<String>) -> AuditEventBuilder {
        AuditEventBuilder {
            event: auditcol_model::AuditEvent::new(event_type, action),
            id: None,
            timestamp: TimestampSetting::Now,
        }
    }

    /// Checks an event in the Flipt v0.2 shape (what auditcol's webhook
    /// receiver takes and its `file` exporter writes). Its timestamp is kept
    /// as it is: 0 means unknown, and the collector then uses the time it
    /// received the event.
    pub fn from_flipt(event: auditcol_model::AuditEvent) -> Result<Self, EventError> {
        Self::checked(event, None)
    }

    /// Parses and checks one Flipt v0.2 JSON event, such as
    /// `{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"ip":"10.0.0.1"}},"payload":{"key":"x"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}`.
    /// `version`, `metadata`, `payload`, `timestamp` and `status` may be
    /// left out; other fields are errors.
    pub fn from_flipt_json(json: &str) -> Result<Self, EventError> {
        Self::from_flipt(serde_json::from_str(json)?)
    }

    fn checked(
        mut event: auditcol_model::AuditEvent,
        id: Option<String>,
    ) -> Result<Self, EventError> {
        event.event_type.make_ascii_lowercase();
        event.action.make_ascii_lowercase();
        for (what, value) in [
            ("type", &event.event_type),
            ("action", &event.action),
            ("status", &event.status),
        ] {
            check_name(what, value)?;
        }
        for (field, _) in event.metadata.actor.fields() {
            check_name("actor field name", field)?;
        }
        if event.version.is_empty() {
            return Err(EventError::EmptyVersion);
        }
        if id.as_deref() == Some("") {
            return Err(EventError::EmptyId);
        }
        let event_name = intern(event_name(&event.event_type, &event.action));
        Ok(Self {
            event,
            id,
            event_name,
        })
    }

    /// The noun, in lower case.
    pub fn event_type(&self) -> &str {
        &self.event.event_type
    }

    /// The verb, in lower case.
    pub fn action(&self) -> &str {
        &self.event.action
    }

    /// The version of the event structure (`0.2`).
    pub fn version(&self) -> &str {
        &self.event.version
    }

    /// The outcome: `success`, `denied`, ...
    pub fn status(&self) -> &str {
        &self.event.status
    }

    /// The actor's fields, known ones (`authentication`, `ip`, `email`,
    /// `name`, `picture`) first, then the others by name.
    pub fn actor(&self) -> impl Iterator<Item = (&str, &str)> {
        self.event.metadata.actor.fields()
    }

    /// The payload (`null` for none).
    pub fn payload(&self) -> &serde_json::Value {
        &self.event.payload
    }

    /// When the event happened, in nanoseconds since 1970; 0 = unknown.
    pub fn timestamp_unix_nanos(&self) -> u64 {
        self.event.timestamp
    }

    /// The event id, when one was set; otherwise the collector assigns one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// `audit.<type>.<action>`, the OTLP event name.
    pub fn event_name(&self) -> &'static str {
        self.event_name
    }

    /// The event in the Flipt v0.2 shape: serialised, it is the line
    /// auditcol's `file` exporter writes for it (`format: json`).
    pub fn as_flipt(&self) -> &auditcol_model::AuditEvent {
        &self.event
    }

    /// The attribute key of actor field `field`: `audit.actor.<field>`.
    pub(crate) fn actor_key(field: &str) -> String {
        format!("{AUDIT_ACTOR_PREFIX}{field}")
    }
}

impl TryFrom<auditcol_model::AuditEvent> for AuditEvent {
    type Error = EventError;

    fn try_from(event: auditcol_model::AuditEvent) -> Result<Self, EventError> {
        Self::from_flipt(event)
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), EventError> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(EventError::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

/// Builds an [`AuditEvent`]; nothing is checked until [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "an event builder does nothing until `build` is called"]
pub struct AuditEventBuilder {
    event: auditcol_model::AuditEvent,
    id: Option<String>,
    timestamp: TimestampSetting,
}

/// The builder's timestamp, checked at build.
#[derive(Debug, Clone, Copy)]
enum TimestampSetting {
    /// The time `build` runs.
    Now,
    /// Nanoseconds since 1970.
    UnixNanos(u64),
    /// A `SystemTime` that OTLP cannot carry.
    OutOfRange,
}

impl AuditEventBuilder {
    /// The outcome (default `success`). `success` is sent at severity INFO,
    /// anything else at WARN.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.event.status = status.into();
        self
    }

    /// Sets actor field `field` (`email`, `ip`, `name`, `authentication`,
    /// or any other name) to `value`; sent as attribute `audit.actor.<field>`.
    pub fn actor(mut self, field: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.event.metadata.actor.set(field.as_ref(), value.into());
        self
    }

    /// The request or object the event is about, sent as the log record's
    /// structured body. `null` members of objects and `null` elements of
    /// arrays are left out: the OpenTelemetry Rust API has no value for
    /// "empty". A `null` payload sends no body.
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.event.payload = payload;
        self
    }

    /// When the event happened (default: when [`build`](Self::build) runs).
    pub fn timestamp(mut self, at: SystemTime) -> Self {
        self.timestamp = at
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .map_or(TimestampSetting::OutOfRange, TimestampSetting::UnixNanos);
        self
    }

    /// When the event happened, in nanoseconds since 1970; 0 means unknown
    /// (the collector then uses the time it received the event).
    pub fn timestamp_unix_nanos(mut self, nanos: u64) -> Self {
        self.timestamp = TimestampSetting::UnixNanos(nanos);
        self
    }

    /// The event id (attribute `audit.id`), for de-duplication downstream.
    /// Without one, the collector assigns a UUIDv7 when it receives the event.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Checks the names and builds the event.
    pub fn build(self) -> Result<AuditEvent, EventError> {
        let mut event = self.event;
        event.timestamp = match self.timestamp {
            TimestampSetting::Now => now_unix_nanos(),
            TimestampSetting::UnixNanos(nanos) => nanos,
            TimestampSetting::OutOfRange => return Err(EventError::TimestampOutOfRange),
        };
        AuditEvent::checked(event, self.id)
    }
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .try_into()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_and_action_are_stored_in_lower_case() {
        let event = AuditEvent::builder("Flag", "CREATED").build().unwrap();
        assert_eq!((event.event_type(), event.action()), ("flag", "created"));
        assert_eq!(event.event_name(), "audit.flag.created");
    }

    #[test]
    fn defaults_are_success_version_0_2_and_now() {
        let before = now_unix_nanos();
        let event = AuditEvent::builder("flag", "created").build().unwrap();
        assert_eq!((event.status(), event.version()), ("success", "0.2"));
        assert!(event.timestamp_unix_nanos() >= before);
        assert_eq!(event.id(), None);
        assert_eq!(event.payload(), &serde_json::Value::Null);
        assert_eq!(event.actor().count(), 0);
    }

    #[test]
    fn every_name_is_checked_with_the_receivers_rule() {
        let cases = [
            (AuditEvent::builder("", "created"), "type", ""),
            (AuditEvent::builder("fl ag", "created"), "type", "fl ag"),
            (AuditEvent::builder("flag", "créé"), "action", "créé"),
            (
                AuditEvent::builder("flag", "created").status("not ok"),
                "status",
                "not ok",
            ),
            (
                AuditEvent::builder("flag", "created").actor("bad key", "x"),
                "actor field name",
                "bad key",
            ),
        ];
        for (builder, what_expected, value_expected) in cases {
            match builder.build() {
                Err(EventError::InvalidName { what, value }) => {
                    assert_eq!((what, value.as_str()), (what_expected, value_expected))
                }
                other => panic!("{what_expected} {value_expected:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_invalid_name_error_says_what_to_use() {
        let err = AuditEvent::builder("flag", "created")
            .actor("bad key", "x")
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "actor field name \"bad key\" is not a valid name: use letters, digits, `_`, `-` or `.`, and at least one character"
        );
    }

    #[test]
    fn an_empty_id_is_refused() {
        let err = AuditEvent::builder("flag", "created")
            .id("")
            .build()
            .unwrap_err();
        assert!(matches!(err, EventError::EmptyId), "{err}");
    }

    #[test]
    fn a_timestamp_before_1970_is_refused() {
        let err = AuditEvent::builder("flag", "created")
            .timestamp(UNIX_EPOCH - Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(err, EventError::TimestampOutOfRange), "{err}");
    }

    #[test]
    fn the_builder_fills_the_flipt_event() {
        let event = AuditEvent::builder("segment", "deleted")
            .status("denied")
            .actor("email", "a@b.c")
            .actor("team", "core")
            .payload(json!({"key": "beta"}))
            .timestamp(UNIX_EPOCH + Duration::from_secs(1_714_557_600))
            .id("0190e4a4-0000-7000-8000-000000000001")
            .build()
            .unwrap();
        assert_eq!(
            serde_json::to_value(event.as_flipt()).unwrap(),
            json!({"version": "0.2", "type": "segment", "action": "deleted",
                   "metadata": {"actor": {"email": "a@b.c", "team": "core"}},
                   "payload": {"key": "beta"}, "timestamp": "2024-05-01T10:00:00Z",
                   "status": "denied"})
        );
        assert_eq!(event.id(), Some("0190e4a4-0000-7000-8000-000000000001"));
    }

    #[test]
    fn flipt_json_is_parsed_and_checked() {
        let event = AuditEvent::from_flipt_json(
            r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"ip":"10.0.0.1"}},"payload":{"key":"x"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#,
        )
        .unwrap();
        assert_eq!(event.timestamp_unix_nanos(), 1_714_557_600_000_000_000);
        assert_eq!(event.actor().collect::<Vec<_>>(), [("ip", "10.0.0.1")]);

        let err = AuditEvent::from_flipt_json(r#"{"type":"flag"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not a Flipt v0.2 audit event: missing field `action`"),
            "{err}"
        );
        let err = AuditEvent::from_flipt_json(r#"{"type":"flag","action":"new one"}"#).unwrap_err();
        assert!(
            matches!(err, EventError::InvalidName { what: "action", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_flipt_event_without_timestamp_keeps_it_unknown() {
        let event = AuditEvent::from_flipt_json(r#"{"type":"flag","action":"created"}"#).unwrap();
        assert_eq!(event.timestamp_unix_nanos(), 0);
    }
}
