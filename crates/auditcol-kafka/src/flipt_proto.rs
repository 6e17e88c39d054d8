//! Flipt's `flipt.audit.Event` protobuf (`proto/flipt/audit/event.proto`),
//! written straight from a record's audit fields and read into an
//! [`AuditEvent`], by hand on the model's wire helpers: no generated code,
//! no system `protoc`. The tests hold both directions to the schema file,
//! compiled at test time and read by reflection.
//!
//! Flipt's schema carries the payload as a `google.protobuf.Struct`, a JSON
//! object whose numbers are doubles: integers beyond ±2^53 lose precision
//! (as in Flipt, whose payloads go through Go's `encoding/json`), a payload
//! that is not an object cannot be written, and integral numbers are read
//! back as integers.

use auditcol_core::model::anyvalue::{base64, view_to_string};
use auditcol_core::model::conventions::{DEFAULT_VERSION, STATUS_SUCCESS};
use auditcol_core::model::json::AuditFields;
use auditcol_core::model::view::{AnyValueView, KvlistView, MAX_ANY_VALUE_DEPTH};
use auditcol_core::model::wire::{
    Fields, WireValue, begin_bytes, end_bytes, put_bytes, put_fixed64, put_key, put_varint,
};
use auditcol_core::model::{Actor, AuditEvent, Metadata};
use serde_json::{Map, Number, Value};

/// Field numbers of `flipt.audit.Event`.
mod event {
    pub const VERSION: u32 = 1;
    pub const TYPE: u32 = 2;
    pub const ACTION: u32 = 3;
    pub const METADATA: u32 = 4;
    pub const PAYLOAD: u32 = 5;
    pub const TIMESTAMP: u32 = 6;
    pub const STATUS: u32 = 7;
    /// `Metadata.actor`.
    pub const METADATA_ACTOR: u32 = 1;
    /// `Actor.other` (auditcol's addition): a map entry per field.
    pub const ACTOR_OTHER: u32 = 100;
    /// The named fields of `Actor`, by number (1 to 5).
    pub const ACTOR_FIELDS: [&str; 5] = ["authentication", "ip", "email", "name", "picture"];
}

/// Field numbers of the well-known types.
mod wkt {
    /// `Struct.fields`; map entries have `key` = 1 and `value` = 2.
    pub const STRUCT_FIELDS: u32 = 1;
    pub const ENTRY_KEY: u32 = 1;
    pub const ENTRY_VALUE: u32 = 2;
    /// `Value` members.
    pub const NULL_VALUE: u32 = 1;
    pub const NUMBER_VALUE: u32 = 2;
    pub const STRING_VALUE: u32 = 3;
    pub const BOOL_VALUE: u32 = 4;
    pub const STRUCT_VALUE: u32 = 5;
    pub const LIST_VALUE: u32 = 6;
    /// `ListValue.values`.
    pub const LIST_VALUES: u32 = 1;
    /// `Timestamp`.
    pub const SECONDS: u32 = 1;
    pub const NANOS: u32 = 2;
}

/// Why an audit event cannot be written as a `flipt.audit.Event`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "its payload is {kind}, and flipt.audit.Event carries a payload only as an object (google.protobuf.Struct): \
     use encoding `json` or `otlp_proto` for such events"
)]
pub struct PayloadNotAnObject {
    /// What the payload is: `an array`, `a string`, ...
    pub kind: &'static str,
}

/// Appends the `flipt.audit.Event` of an audit event to `out`. Nothing is
/// written when the payload is not an object (or absent).
pub fn write_event(fields: &AuditFields<'_>, out: &mut Vec<u8>) -> Result<(), PayloadNotAnObject> {
    let payload = match fields.body {
        AnyValueView::Empty => None,
        AnyValueView::Kvlist(kvlist) => Some(kvlist),
        other => {
            return Err(PayloadNotAnObject {
                kind: kind_of(other),
            });
        }
    };
    let (noun, verb) = fields.audit.noun_verb().unwrap_or_default();
    put_string(
        out,
        event::VERSION,
        fields.audit.version.unwrap_or(DEFAULT_VERSION),
    );
    put_string(out, event::TYPE, noun);
    put_string(out, event::ACTION, verb);
    // Flipt always writes the actor, empty or not.
    let metadata = begin_bytes(out, event::METADATA);
    let actor = begin_bytes(out, event::METADATA_ACTOR);
    for (name, value) in fields.actor() {
        let text;
        let value = match value {
            AnyValueView::String(s) => s,
            other => {
                text = view_to_string(other);
                &text
            }
        };
        match event::ACTOR_FIELDS.iter().position(|f| *f == name) {
            Some(i) => put_string(out, i as u32 + 1, value),
            None => {
                let entry = begin_bytes(out, event::ACTOR_OTHER);
                put_bytes(out, wkt::ENTRY_KEY, name.as_bytes());
                put_bytes(out, wkt::ENTRY_VALUE, value.as_bytes());
                end_bytes(out, entry);
            }
        }
    }
    end_bytes(out, actor);
    end_bytes(out, metadata);
    if let Some(kvlist) = payload {
        let start = begin_bytes(out, event::PAYLOAD);
        write_struct(kvlist, out);
        end_bytes(out, start);
    }
    let timestamp = begin_bytes(out, event::TIMESTAMP);
    let seconds = fields.time / 1_000_000_000;
    let nanos = fields.time % 1_000_000_000;
    if seconds != 0 {
        put_key(out, wkt::SECONDS, 0);
        put_varint(out, seconds);
    }
    if nanos != 0 {
        put_key(out, wkt::NANOS, 0);
        put_varint(out, nanos);
    }
    end_bytes(out, timestamp);
    // `optional`: written even when it is the default.
    put_bytes(
        out,
        event::STATUS,
        fields.audit.status.unwrap_or(STATUS_SUCCESS).as_bytes(),
    );
    Ok(())
}

/// Proto3 leaves empty strings out.
fn put_string(out: &mut Vec<u8>, number: u32, value: &str) {
    if !value.is_empty() {
        put_bytes(out, number, value.as_bytes());
    }
}

fn kind_of(value: AnyValueView<'_>) -> &'static str {
    match value {
        AnyValueView::Empty => "empty",
        AnyValueView::String(_) => "a string",
        AnyValueView::Bool(_) => "a boolean",
        AnyValueView::Int(_) | AnyValueView::Double(_) => "a number",
        AnyValueView::Bytes(_) => "bytes",
        AnyValueView::Array(_) => "an array",
        AnyValueView::Kvlist(_) => "an object",
    }
}

/// The fields of a `Struct`.
fn write_struct(kvlist: KvlistView<'_>, out: &mut Vec<u8>) {
    for kv in kvlist.values() {
        let entry = begin_bytes(out, wkt::STRUCT_FIELDS);
        put_bytes(out, wkt::ENTRY_KEY, kv.key.as_bytes());
        let value = begin_bytes(out, wkt::ENTRY_VALUE);
        write_value(kv.value, out);
        end_bytes(out, value);
        end_bytes(out, entry);
    }
}

/// The fields of a `google.protobuf.Value`, as the event's JSON has it
/// (bytes as base64 text, non-finite numbers as null).
fn write_value(value: AnyValueView<'_>, out: &mut Vec<u8>) {
    let null = |out: &mut Vec<u8>| {
        put_key(out, wkt::NULL_VALUE, 0);
        put_varint(out, 0);
    };
    match value {
        AnyValueView::Empty => null(out),
        AnyValueView::Bool(b) => {
            put_key(out, wkt::BOOL_VALUE, 0);
            put_varint(out, u64::from(b));
        }
        AnyValueView::Int(i) => put_fixed64(out, wkt::NUMBER_VALUE, (i as f64).to_bits()),
        AnyValueView::Double(d) if d.is_finite() => {
            put_fixed64(out, wkt::NUMBER_VALUE, d.to_bits())
        }
        AnyValueView::Double(_) => null(out),
        AnyValueView::String(s) => put_bytes(out, wkt::STRING_VALUE, s.as_bytes()),
        AnyValueView::Bytes(b) => put_bytes(out, wkt::STRING_VALUE, base64(b).as_bytes()),
        AnyValueView::Array(array) => {
            let list = begin_bytes(out, wkt::LIST_VALUE);
            for item in array.values() {
                let start = begin_bytes(out, wkt::LIST_VALUES);
                write_value(item, out);
                end_bytes(out, start);
            }
            end_bytes(out, list);
        }
        AnyValueView::Kvlist(kvlist) => {
            let start = begin_bytes(out, wkt::STRUCT_VALUE);
            write_struct(kvlist, out);
            end_bytes(out, start);
        }
    }
}

/// Reads a `flipt.audit.Event` (as Flipt's Kafka sink or auditcol's
/// exporter writes it). Unknown fields are skipped, as proto3 wants; an
/// empty `version` reads as `0.2` and an absent `status` as `success`.
/// Errors name the field: `payload.fields["key"]: ...`.
pub fn read_event(bytes: &[u8]) -> Result<AuditEvent, String> {
    let mut event = AuditEvent::new("", "");
    event.version.clear();
    let mut status = None;
    for field in Fields::new(bytes) {
        let field = field.map_err(|e| format!("not a flipt.audit.Event: {e}"))?;
        match field.number {
            event::VERSION => event.version = string(field.value, "version")?.to_owned(),
            event::TYPE => event.event_type = string(field.value, "type")?.to_owned(),
            event::ACTION => event.action = string(field.value, "action")?.to_owned(),
            event::STATUS => status = Some(string(field.value, "status")?.to_owned()),
            event::METADATA => {
                event.metadata = read_metadata(message(field.value, "metadata")?)?;
            }
            event::PAYLOAD => {
                let fields = read_struct(message(field.value, "payload")?, "payload", 0)?;
                event.payload = Value::Object(fields);
            }
            event::TIMESTAMP => {
                event.timestamp = read_timestamp(message(field.value, "timestamp")?)?;
            }
            _ => {}
        }
    }
    if event.version.is_empty() {
        event.version = DEFAULT_VERSION.to_owned();
    }
    event.status = status.unwrap_or_else(|| STATUS_SUCCESS.to_owned());
    Ok(event)
}

fn message<'a>(value: WireValue<'a>, at: &str) -> Result<&'a [u8], String> {
    value.bytes().ok_or_else(|| {
        format!(
            "{at}: expected a message, found wire type {}",
            value.wire_type()
        )
    })
}

fn string<'a>(value: WireValue<'a>, at: &str) -> Result<&'a str, String> {
    let bytes = message(value, at)?;
    std::str::from_utf8(bytes).map_err(|_| format!("{at}: not UTF-8"))
}

fn varint(value: WireValue<'_>, at: &str) -> Result<u64, String> {
    value.varint().ok_or_else(|| {
        format!(
            "{at}: expected a varint, found wire type {}",
            value.wire_type()
        )
    })
}

fn fields_of<'a>(
    bytes: &'a [u8],
    at: &'a str,
) -> impl Iterator<Item = Result<auditcol_core::model::wire::Field<'a>, String>> + 'a {
    Fields::new(bytes).map(move |f| f.map_err(|e| format!("{at}: {e}")))
}

fn read_metadata(bytes: &[u8]) -> Result<Metadata, String> {
    let mut actor = Actor::default();
    for field in fields_of(bytes, "metadata") {
        let field = field?;
        if field.number != event::METADATA_ACTOR {
            continue;
        }
        for field in fields_of(message(field.value, "metadata.actor")?, "metadata.actor") {
            let field = field?;
            match field.number {
                n @ 1..=5 => {
                    let name = event::ACTOR_FIELDS[n as usize - 1];
                    let at = format!("metadata.actor.{name}");
                    let value = string(field.value, &at)?;
                    // Flipt's encoder leaves empty fields out; so does the model.
                    if !value.is_empty() {
                        actor.set(name, value.to_owned());
                    }
                }
                event::ACTOR_OTHER => {
                    let (key, value) = read_string_entry(field.value)?;
                    if !key.is_empty() && !value.is_empty() {
                        actor.set(key, value.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Metadata { actor })
}

fn read_string_entry(value: WireValue<'_>) -> Result<(&str, &str), String> {
    let at = "metadata.actor.other";
    let (mut key, mut text) = ("", "");
    for field in fields_of(message(value, at)?, at) {
        let field = field?;
        match field.number {
            wkt::ENTRY_KEY => key = string(field.value, at)?,
            wkt::ENTRY_VALUE => text = string(field.value, at)?,
            _ => {}
        }
    }
    Ok((key, text))
}

fn read_timestamp(bytes: &[u8]) -> Result<u64, String> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for field in fields_of(bytes, "timestamp") {
        let field = field?;
        match field.number {
            wkt::SECONDS => seconds = varint(field.value, "timestamp.seconds")? as i64,
            wkt::NANOS => nanos = i64::from(varint(field.value, "timestamp.nanos")? as i32),
            _ => {}
        }
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(format!("timestamp.nanos: {nanos} is not in 0..999999999"));
    }
    u64::try_from(seconds)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|n| n.checked_add(nanos as u64))
        .ok_or_else(|| {
            format!(
                "timestamp: {seconds} s is outside the range OTLP can carry (1970-01-01 to 2554-07-21)"
            )
        })
}

fn read_struct(bytes: &[u8], at: &str, depth: usize) -> Result<Map<String, Value>, String> {
    if depth >= MAX_ANY_VALUE_DEPTH {
        return Err(format!(
            "{at}: nested deeper than {MAX_ANY_VALUE_DEPTH} levels"
        ));
    }
    let mut map = Map::new();
    for field in fields_of(bytes, at) {
        let field = field?;
        if field.number != wkt::STRUCT_FIELDS {
            continue;
        }
        let (mut key, mut value) = ("", None);
        for part in fields_of(message(field.value, at)?, at) {
            let part = part?;
            match part.number {
                wkt::ENTRY_KEY => key = string(part.value, at)?,
                wkt::ENTRY_VALUE => value = Some(message(part.value, at)?),
                _ => {}
            }
        }
        let at = format!("{at}.fields[{key:?}]");
        let value = match value {
            Some(bytes) => read_value(bytes, &at, depth + 1)?,
            None => Value::Null,
        };
        // Map semantics: the last entry of a key wins.
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

fn read_value(bytes: &[u8], at: &str, depth: usize) -> Result<Value, String> {
    let mut value = Value::Null;
    for field in fields_of(bytes, at) {
        let field = field?;
        // A oneof: the last member given wins.
        value = match field.number {
            wkt::NULL_VALUE => {
                varint(field.value, at)?;
                Value::Null
            }
            wkt::NUMBER_VALUE => {
                let bits = field
                    .value
                    .fixed64()
                    .ok_or_else(|| format!("{at}: number_value is not a double"))?;
                number(f64::from_bits(bits))
            }
            wkt::STRING_VALUE => Value::String(string(field.value, at)?.to_owned()),
            wkt::BOOL_VALUE => Value::Bool(varint(field.value, at)? != 0),
            wkt::STRUCT_VALUE => Value::Object(read_struct(message(field.value, at)?, at, depth)?),
            wkt::LIST_VALUE => {
                if depth >= MAX_ANY_VALUE_DEPTH {
                    return Err(format!(
                        "{at}: nested deeper than {MAX_ANY_VALUE_DEPTH} levels"
                    ));
                }
                let mut items = Vec::new();
                for item in fields_of(message(field.value, at)?, at) {
                    let item = item?;
                    if item.number == wkt::LIST_VALUES {
                        let at = format!("{at}[{}]", items.len());
                        items.push(read_value(message(item.value, &at)?, &at, depth + 1)?);
                    }
                }
                Value::Array(items)
            }
            _ => continue,
        };
    }
    Ok(value)
}

/// A `Struct` number as JSON: integral values within ±2^53 (exact in a
/// double) as integers, as they were before they became doubles.
fn number(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= EXACT {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests;
