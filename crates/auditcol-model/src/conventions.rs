//! Names and values of the audit ⇄ OTLP conventions (DESIGN.md §2).
//!
//! There is no OpenTelemetry semantic convention for audit logs yet, so the
//! `audit.*` attributes are auditcol's own; event names follow the semconv
//! naming rules (lower case, dot separated).

/// The noun: the kind of entity acted upon (`flag`, `segment`, ...).
pub const AUDIT_TYPE: &str = "audit.type";
/// The verb: what was done (`created`, `deleted`, ...).
pub const AUDIT_ACTION: &str = "audit.action";
/// The version of the audit event structure (`0.2`).
pub const AUDIT_VERSION: &str = "audit.version";
/// The outcome (`success`, `denied`, ...).
pub const AUDIT_STATUS: &str = "audit.status";
/// The prefix of one attribute per actor field: `audit.actor.<field>`.
pub const AUDIT_ACTOR_PREFIX: &str = "audit.actor.";
/// The event id used by downstream systems to de-duplicate.
pub const AUDIT_ID: &str = "audit.id";
/// Where the event came from (`flipt`, `flagsmith`, `otlp`, or a configured name).
pub const AUDIT_SOURCE: &str = "audit.source";
/// The prefix of every event name: `audit.<type>.<action>`.
pub const EVENT_NAME_PREFIX: &str = "audit.";

/// The status of a successful event; any other status is logged at WARN.
pub const STATUS_SUCCESS: &str = "success";
/// The event structure version auditcol writes when none is given.
pub const DEFAULT_VERSION: &str = "0.2";

/// OTLP severity number INFO.
pub const SEVERITY_INFO: i32 = 9;
/// OTLP severity number WARN.
pub const SEVERITY_WARN: i32 = 13;

/// The `audit.source` value of events received as OTLP logs.
pub const SOURCE_OTLP: &str = "otlp";

/// The OTLP severity (number, text) for an audit status.
pub fn severity_for_status(status: &str) -> (i32, &'static str) {
    if status == STATUS_SUCCESS {
        (SEVERITY_INFO, "INFO")
    } else {
        (SEVERITY_WARN, "WARN")
    }
}

/// `audit.<type>.<action>`, the OTLP event name of an audit event.
pub fn event_name(noun: &str, verb: &str) -> String {
    let mut name = String::with_capacity(EVENT_NAME_PREFIX.len() + noun.len() + 1 + verb.len());
    name.push_str(EVENT_NAME_PREFIX);
    name.push_str(noun);
    name.push('.');
    name.push_str(verb);
    name
}

/// A fresh event id: a UUIDv7, time ordered, assigned once at ingest.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A fresh event id written into `buf`, without allocating.
pub fn write_new_event_id(buf: &mut [u8; 36]) -> &str {
    uuid::Uuid::now_v7().hyphenated().encode_lower(buf)
}
