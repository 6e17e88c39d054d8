//! Request bodies → one JSON value per event: a single object, a JSON array
//! of them, or NDJSON (one per line).
//!
//! Parsing is strict where leniency could hide what was sent: a key that
//! appears twice in an object is an error (parsers disagree on which one
//! wins, so the audit trail might record something other than what the
//! sender's own tools show), as are trailing characters after the JSON.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The media types a request body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: one event object, or an array of them.
    Json,
    /// `application/x-ndjson`: one event object per line; blank lines are skipped.
    Ndjson,
}

/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/x-ndjson`.
pub const NDJSON: &str = "application/x-ndjson";

impl BodyKind {
    /// The kind named by a `Content-Type` value; parameters such as
    /// `; charset=utf-8` are ignored. `None` for any other media type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case(JSON) {
            Some(Self::Json)
        } else if media_type.eq_ignore_ascii_case(NDJSON) {
            Some(Self::Ndjson)
        } else {
            None
        }
    }
}

/// Why a request's events were refused: where (`events[3].timestamp`,
/// `events[0]`, or `body`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EventError {
    /// Where the problem is, as a path into the request.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl EventError {
    /// An error at `path`.
    pub fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The path of event `index`: `events[3]`.
pub fn event_path(index: usize) -> String {
    format!("events[{index}]")
}

/// Splits `body` into one JSON value per event, in order.
pub fn parse_events(body: &[u8], kind: BodyKind) -> Result<Vec<Value>, EventError> {
    match kind {
        BodyKind::Json => parse_json_body(body),
        BodyKind::Ndjson => parse_ndjson_body(body),
    }
}

fn parse_json_body(body: &[u8]) -> Result<Vec<Value>, EventError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    // An array's elements are events[i]; a lone object is events[0].
    let (prefix, in_array) = match first {
        Some(b'[') => ("events".to_owned(), true),
        Some(_) => (event_path(0), false),
        None => {
            return Err(EventError::at(
                "body",
                "empty: send one audit event as a JSON object, or an array of them",
            ));
        }
    };
    match parse_strict(body, &prefix)? {
        Value::Array(events) if in_array => Ok(events),
        event @ Value::Object(_) => Ok(vec![event]),
        other => Err(EventError::at(
            "body",
            format!(
                "expected a JSON object (one event) or an array of events, got {}",
                kind_of(&other)
            ),
        )),
    }
}

fn parse_ndjson_body(body: &[u8]) -> Result<Vec<Value>, EventError> {
    let mut events = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let prefix = event_path(events.len());
        events.push(parse_strict(line, &prefix)?);
    }
    Ok(events)
}

/// Parses one JSON text, refusing duplicate keys; errors carry `prefix`
/// followed by the path inside the text.
fn parse_strict(text: &[u8], prefix: &str) -> Result<Value, EventError> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| {
            let path = join_path(prefix, e.path());
            EventError::at(path, format!("invalid JSON: {}", e.into_inner()))
        })
        .map(|StrictValue(value)| value)?;
    deserializer
        .end()
        .map_err(|e| EventError::at(prefix, format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// `prefix` followed by `path` in the receiver's notation: `events[3].metadata.actor`.
fn join_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = prefix.to_owned();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// What kind of JSON value `value` is, for messages: `an array`, `a string`.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value whose objects have no key twice.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON numbers are always finite; `from` maps anything else to null.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(deserializer).map(|StrictValue(v)| v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(body: &str) -> Result<Vec<Value>, EventError> {
        parse_events(body.as_bytes(), BodyKind::Json)
    }

    fn ndjson(body: &str) -> Result<Vec<Value>, EventError> {
        parse_events(body.as_bytes(), BodyKind::Ndjson)
    }

    #[test]
    fn content_types_are_matched_without_parameters_or_case() {
        for (value, kind) in [
            ("application/json", Some(BodyKind::Json)),
            ("Application/JSON; charset=utf-8", Some(BodyKind::Json)),
            ("application/x-ndjson", Some(BodyKind::Ndjson)),
            (
                " application/x-ndjson ;charset=UTF-8",
                Some(BodyKind::Ndjson),
            ),
            ("text/plain", None),
            ("application/jsonl", None),
            ("", None),
        ] {
            assert_eq!(BodyKind::from_content_type(value), kind, "{value:?}");
        }
    }

    #[test]
    fn a_lone_object_is_one_event() {
        assert_eq!(json(r#" {"a":1} "#).unwrap(), vec![json!({"a": 1})]);
    }

    #[test]
    fn an_array_holds_the_events_in_order() {
        assert_eq!(
            json(r#"[{"a":1},{"b":2}]"#).unwrap(),
            vec![json!({"a": 1}), json!({"b": 2})]
        );
        assert_eq!(json("[]").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn ndjson_has_one_event_per_line_and_skips_blank_lines() {
        let events = ndjson("{\"a\":1}\r\n\n  \n{\"b\":2}").unwrap();
        assert_eq!(events, vec![json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(ndjson("").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn object_keys_keep_their_order() {
        let events = json(r#"{"z":1,"a":2,"m":3}"#).unwrap();
        let keys: Vec<_> = events[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn a_duplicate_key_is_an_error_naming_the_object_and_the_key() {
        let err = json(r#"[{"a":1},{"metadata":{"actor":{"ip":"1","ip":"2"}}}]"#).unwrap_err();
        assert_eq!(err.path, "events[1].metadata.actor");
        assert!(err.reason.contains("duplicate key `ip`"), "{err}");
        let err = ndjson("{}\n{}\n{\"type\":\"a\",\"type\":\"b\"}").unwrap_err();
        assert_eq!(err.to_string().split(':').next(), Some("events[2]"));
        assert!(err.reason.contains("duplicate key `type`"), "{err}");
    }

    #[test]
    fn a_syntax_error_names_the_event_and_the_position() {
        let err = json(r#"{"type": "flag", "action": }"#).unwrap_err();
        assert!(err.path.starts_with("events[0]"), "{err}");
        assert!(err.reason.starts_with("invalid JSON: "), "{err}");
        assert!(err.reason.contains("column"), "{err}");
        let err = ndjson("{}\n\n{\"a\":\n").unwrap_err();
        assert!(err.path.starts_with("events[1]"), "{err}");
    }

    #[test]
    fn trailing_characters_are_an_error() {
        let err = json(r#"{"a":1} {"b":2}"#).unwrap_err();
        assert_eq!(err.path, "events[0]");
        assert!(err.reason.contains("trailing characters"), "{err}");
    }

    #[test]
    fn an_empty_body_or_a_scalar_is_an_error_about_the_body() {
        assert_eq!(json("  ").unwrap_err().path, "body");
        let err = json("42").unwrap_err();
        assert_eq!(err.path, "body");
        assert!(err.reason.contains("got a number"), "{err}");
    }

    #[test]
    fn an_array_element_error_has_its_index() {
        let err = json(r#"[{}, {}, {"a": [1, 2, tru]}]"#).unwrap_err();
        assert!(err.path.starts_with("events[2]"), "{err}");
    }

    #[test]
    fn nesting_is_bounded_without_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(json(&deep).is_err());
        let deep = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(json(&deep).is_err());
    }
}
