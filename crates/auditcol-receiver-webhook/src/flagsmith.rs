//! `format: flagsmith`: Flagsmith audit-log webhooks → audit events
//! (DESIGN.md §2).
//!
//! Flagsmith posts an audit-log entry either bare (as its documentation
//! shows) or, from its organisation webhooks, in an envelope
//! `{"event_type": "AUDIT_LOG_CREATED", "data": {...}}`. Organisation
//! webhooks also carry `FLAG_UPDATED` / `FLAG_DELETED` envelopes for the
//! same changes the audit log records; those are acknowledged and not kept
//! (the audit-log entry is the audit record).
//!
//! | Flagsmith | audit event / OTLP record |
//! |---|---|
//! | `related_object_type` | `type`: lower case; a character outside `[a-z0-9_.-]` becomes `_` (`FEATURE_STATE` → `feature_state`, any newer value too) |
//! | `log` | `action`, inferred: see [`infer_action`] |
//! | `author.id`, `.email`, `.first_name`, `.last_name` | actor fields `id`, `email`, `first_name`, `last_name` (absent when null or empty) |
//! | `author: null` | a system event: actor `authentication` = `system` |
//! | `created_date` | `timestamp` |
//! | the whole entry | `payload`, as received |
//! | `id` | `audit.id` |
//! | `project.id`, `environment.id`, `related_object_id`, `related_object_uuid` | `flagsmith.project.id`, `flagsmith.environment.id`, `flagsmith.related_object.id`, `flagsmith.related_object.uuid` (when not null) |
//!
//! Fields Flagsmith adds over time stay in the payload: an entry is refused
//! only when a field the mapping reads has the wrong type.

use auditcol_core::model::conventions::AUDIT_ID;
use auditcol_core::model::{Actor, AuditEvent};
use serde_json::{Map, Value};

use crate::body::{EventError, kind_of};
use crate::decode::{expect_object, field_path, required_str, required_timestamp};

/// The envelope `event_type` of audit-log entries.
pub const AUDIT_LOG_CREATED: &str = "AUDIT_LOG_CREATED";
/// Attribute: the Flagsmith project's id.
pub const FLAGSMITH_PROJECT_ID: &str = "flagsmith.project.id";
/// Attribute: the Flagsmith environment's id.
pub const FLAGSMITH_ENVIRONMENT_ID: &str = "flagsmith.environment.id";
/// Attribute: the integer id of the object the entry is about.
pub const FLAGSMITH_RELATED_OBJECT_ID: &str = "flagsmith.related_object.id";
/// Attribute: the UUID of the object the entry is about.
pub const FLAGSMITH_RELATED_OBJECT_UUID: &str = "flagsmith.related_object.uuid";
/// The actor `authentication` of entries without an author.
pub const SYSTEM_AUTHENTICATION: &str = "system";

/// An event and the attributes it carries beside the model's fields.
pub type Mapped = (AuditEvent, Vec<(&'static str, String)>);

/// Decodes the entry `value`, found at `at` (`events[0]`); `None` for a
/// webhook event that is not an audit-log entry.
pub fn decode(value: Value, at: &str) -> Result<Option<Mapped>, EventError> {
    let mut object = expect_object(value, at, "a Flagsmith audit-log entry")?;
    let is_audit_log = match object.get("event_type") {
        None => return map_entry(object, at).map(Some),
        Some(Value::String(event_type)) => event_type == AUDIT_LOG_CREATED,
        Some(other) => {
            return Err(EventError::at(
                field_path(at, "event_type"),
                format!("expected a string, got {}", kind_of(other)),
            ));
        }
    };
    if !is_audit_log {
        return Ok(None);
    }
    let at = field_path(at, "data");
    let data = match object.remove("data") {
        Some(data) => expect_object(data, &at, "the audit-log entry")?,
        None => {
            return Err(EventError::at(
                at,
                "missing: an AUDIT_LOG_CREATED event carries its entry in `data`",
            ));
        }
    };
    map_entry(data, &at).map(Some)
}

/// The action a Flagsmith `log` text describes, which the entry has no
/// field for.
///
/// The words of the text are read in order, case-insensitively, skipping
/// text in single quotes (where Flagsmith puts feature, segment and
/// identity names), and the first of these words decides: `created` or
/// `new` → `created`, `deleted` or `removed` → `deleted`; a text with none
/// of them is `updated`. A word is a run of letters, digits, `_` and `-`,
/// so a name such as `new_checkout` or `removed-banner` is not a verb:
///
/// | `log` | action |
/// |---|---|
/// | `New Flag / Remote Config created: my_feature` | `created` |
/// | `Flag / Remote Config Deleted: my_feature` | `deleted` |
/// | `Feature: x removed from Release Pipeline: y` | `deleted` |
/// | `Flag state updated for feature: new_checkout` | `updated` |
/// | `Change Request: launch approved` | `updated` |
///
/// A name outside quotes that is one of these words (a change request
/// titled "New pricing") can mislead the rule; the `log` text itself stays
/// in the payload.
pub fn infer_action(log: &str) -> &'static str {
    let mut quoted = false;
    for word in log.split(|c: char| {
        if c == '\'' {
            quoted = !quoted;
            return true;
        }
        quoted || !(c.is_alphanumeric() || c == '_' || c == '-')
    }) {
        if ["created", "new"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
        {
            return "created";
        }
        if ["deleted", "removed"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
        {
            return "deleted";
        }
    }
    "updated"
}

/// The noun for a `related_object_type`: lower case, and `_` for any
/// character a noun cannot have.
pub fn noun_for(related_object_type: &str) -> String {
    related_object_type
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '.' | '-') => c,
            _ => '_',
        })
        .collect()
}

fn map_entry(entry: Map<String, Value>, at: &str) -> Result<Mapped, EventError> {
    let related_object_type = required_str(&entry, at, "related_object_type")?;
    if related_object_type.is_empty() {
        return Err(EventError::at(
            field_path(at, "related_object_type"),
            "must not be empty",
        ));
    }
    let mut event = AuditEvent::new(
        noun_for(related_object_type),
        infer_action(required_str(&entry, at, "log")?),
    );
    event.timestamp = required_timestamp(&entry, at, "created_date")?;
    event.metadata.actor = actor(&entry, at)?;

    let mut attributes = Vec::new();
    let mut keep = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            attributes.push((name, value));
        }
    };
    keep(AUDIT_ID, id(entry.get("id"), &field_path(at, "id"))?);
    for (object, attribute) in [
        ("project", FLAGSMITH_PROJECT_ID),
        ("environment", FLAGSMITH_ENVIRONMENT_ID),
    ] {
        let path = field_path(at, object);
        let value = match entry.get(object) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => id(o.get("id"), &field_path(&path, "id"))?,
            Some(other) => {
                return Err(EventError::at(
                    path,
                    format!("expected an object or null, got {}", kind_of(other)),
                ));
            }
        };
        keep(attribute, value);
    }
    keep(
        FLAGSMITH_RELATED_OBJECT_ID,
        id(
            entry.get("related_object_id"),
            &field_path(at, "related_object_id"),
        )?,
    );
    keep(
        FLAGSMITH_RELATED_OBJECT_UUID,
        id(
            entry.get("related_object_uuid"),
            &field_path(at, "related_object_uuid"),
        )?,
    );

    event.payload = Value::Object(entry);
    Ok((event, attributes))
}

fn actor(entry: &Map<String, Value>, at: &str) -> Result<Actor, EventError> {
    let mut actor = Actor::default();
    let at = field_path(at, "author");
    let author = match entry.get("author") {
        None | Some(Value::Null) => {
            actor.authentication = Some(SYSTEM_AUTHENTICATION.to_owned());
            return Ok(actor);
        }
        Some(Value::Object(author)) => author,
        Some(other) => {
            return Err(EventError::at(
                at,
                format!("expected an object or null, got {}", kind_of(other)),
            ));
        }
    };
    for field in ["id", "email", "first_name", "last_name"] {
        if let Some(value) = id(author.get(field), &field_path(&at, field))? {
            actor.set(field, value);
        }
    }
    Ok(actor)
}

/// An identifier or name that may be a string or an integer; null and empty
/// strings are absent.
fn id(value: Option<&Value>, at: &str) -> Result<Option<String>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(EventError::at(
            at,
            format!("expected a string or an integer, got {}", kind_of(other)),
        )),
    }
}

#[cfg(test)]
mod tests;
