//! Protobuf → OTLP/JSON, read in place with the wire reader.
//!
//! The output is what `serde_json` writes for `opentelemetry-proto`'s
//! generated types (with its `with-serde` feature): every field in the
//! struct's declaration order, defaults included, absent messages as
//! `null`, 64-bit times and `intValue` as strings, ids as lower-case hex,
//! bytes as padded standard base64, an `AnyValue` as `{"<member>": value}`
//! (`{}` when empty) and `keyStrindex` only when not zero.
//!
//! Each message is read in one pass over its fields, which keeps the last
//! occurrence of every scalar, gathers the occurrences of every embedded
//! message (protobuf merges them: reading their concatenation is the merge)
//! and the items of every repeated field, checking wire types and UTF-8 on
//! the way; then its JSON is written in serde's field order. Nothing is
//! allocated for a message with up to 16 attributes (8 items of other
//! repeated fields). An error leaves partial output, which the caller
//! truncates.

use auditcol_model::json::write_str;
use auditcol_model::view::{
    CheckError, MAX_ANY_VALUE_DEPTH, check_utf8, common, container, log_record,
};
use auditcol_model::wire::{Field, Fields};
use base64::Engine as _;
use serde_json::ser::Formatter as _;
use smallvec::{SmallVec, smallvec};

use super::{JsonError, field, too_deep};

/// The encodings of one message: more than one when an embedded message
/// field occurs several times, which protobuf reads as their merge.
type Parts<'a> = SmallVec<[&'a [u8]; 1]>;

pub(super) fn protobuf_to_json(request: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    let start = out.len();
    write_request(request, out).map_err(|e| {
        out.truncate(start);
        JsonError {
            path: e.path,
            reason: e.reason,
        }
    })
}

/// The errors of the wire checks at ingest ([`auditcol_model::view`]):
/// same paths, same reasons.
type Error = CheckError;

fn error(reason: String) -> Error {
    CheckError {
        path: String::new(),
        reason,
    }
}

fn invalid(reason: impl std::fmt::Display) -> Error {
    error(format!("invalid protobuf: {reason}"))
}

/// Calls `f` on every field of the message made of `parts`.
fn each_field<'a>(
    parts: &[&'a [u8]],
    mut f: impl FnMut(Field<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    for part in parts {
        for field in Fields::new(part) {
            f(field.map_err(invalid)?)?;
        }
    }
    Ok(())
}

/// The occurrences of a repeated field, in order.
type Items<'a> = SmallVec<[&'a [u8]; 8]>;

/// Writes `items` as a JSON array, each with `f`; errors get the path
/// `name[index]`.
fn write_items(
    items: &[&[u8]],
    name: &str,
    out: &mut Vec<u8>,
    mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(b'[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        f(item, out).map_err(|e| e.within(&format!("{name}[{index}]")))?;
    }
    out.push(b']');
    Ok(())
}

/// The payload of a field that must be of wire type `expected`.
fn expect(field: Field<'_>, name: &str, expected: u8) -> Result<(), Error> {
    if field.value.wire_type() == expected {
        Ok(())
    } else {
        Err(invalid(format!(
            "wire type {} where {expected} is expected",
            field.value.wire_type()
        ))
        .within(name))
    }
}

fn varint(field: Field<'_>, name: &str) -> Result<u64, Error> {
    expect(field, name, 0)?;
    Ok(field.value.varint().unwrap_or_default())
}

fn fixed64(field: Field<'_>, name: &str) -> Result<u64, Error> {
    expect(field, name, 1)?;
    Ok(field.value.fixed64().unwrap_or_default())
}

fn fixed32(field: Field<'_>, name: &str) -> Result<u32, Error> {
    expect(field, name, 5)?;
    Ok(field.value.fixed32().unwrap_or_default())
}

fn bytes<'a>(field: Field<'a>, name: &str) -> Result<&'a [u8], Error> {
    expect(field, name, 2)?;
    Ok(field.value.bytes().unwrap_or_default())
}

fn string<'a>(field: Field<'a>, name: &str) -> Result<&'a str, Error> {
    check_utf8(bytes(field, name)?).map_err(|e| e.within(name))
}

/// Adds one occurrence of an embedded message.
fn merge<'a>(message: &mut Option<Parts<'a>>, bytes: &'a [u8]) {
    match message {
        Some(parts) => parts.push(bytes),
        None => *message = Some(smallvec![bytes]),
    }
}

fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// An integer as a JSON string, as `opentelemetry-proto` writes 64-bit ones.
fn write_quoted_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.push(b'"');
    write_int(out, value);
    out.push(b'"');
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'"');
}

fn write_request(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut resource_logs = Items::new();
    each_field(&[bytes], |f| {
        if f.number == container::REQUEST_RESOURCE_LOGS {
            resource_logs.push(self::bytes(f, "resourceLogs")?);
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"resourceLogs\":");
    write_items(&resource_logs, "resourceLogs", out, |b, out| {
        write_resource_logs(&[b], out)
    })?;
    out.push(b'}');
    Ok(())
}

fn write_resource_logs(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut resource = None;
    let mut scope_logs = Items::new();
    let mut schema_url = "";
    each_field(parts, |f| {
        match f.number {
            container::RESOURCE => merge(&mut resource, bytes(f, "resource")?),
            container::SCOPE_LOGS => scope_logs.push(bytes(f, "scopeLogs")?),
            container::SCHEMA_URL => schema_url = string(f, "schemaUrl")?,
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"resource\":");
    match resource {
        Some(resource) => write_resource(&resource, out).map_err(|e| e.within("resource"))?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"scopeLogs\":");
    write_items(&scope_logs, "scopeLogs", out, |b, out| {
        write_scope_logs(&[b], out)
    })?;
    out.extend_from_slice(b",\"schemaUrl\":");
    write_str(out, schema_url);
    out.push(b'}');
    Ok(())
}

fn write_resource(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut attributes = Items::new();
    let mut dropped = 0u32;
    let mut entity_refs = Items::new();
    each_field(parts, |f| {
        match f.number {
            common::RESOURCE_ATTRIBUTES => attributes.push(bytes(f, "attributes")?),
            field::RESOURCE_DROPPED_ATTRIBUTES_COUNT => {
                dropped = varint(f, "droppedAttributesCount")? as u32
            }
            field::RESOURCE_ENTITY_REFS => entity_refs.push(bytes(f, "entityRefs")?),
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"attributes\":");
    write_attributes(&attributes, out)?;
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    write_int(out, dropped);
    out.extend_from_slice(b",\"entityRefs\":");
    write_items(&entity_refs, "entityRefs", out, |b, out| {
        write_entity_ref(&[b], out)
    })?;
    out.push(b'}');
    Ok(())
}

fn write_entity_ref(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut schema_url = "";
    let mut kind = "";
    let mut id_keys: SmallVec<[&str; 4]> = SmallVec::new();
    let mut description_keys: SmallVec<[&str; 4]> = SmallVec::new();
    each_field(parts, |f| {
        match f.number {
            field::ENTITY_SCHEMA_URL => schema_url = string(f, "schemaUrl")?,
            field::ENTITY_TYPE => kind = string(f, "type")?,
            field::ENTITY_ID_KEYS => id_keys.push(string(f, "idKeys")?),
            field::ENTITY_DESCRIPTION_KEYS => description_keys.push(string(f, "descriptionKeys")?),
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"schemaUrl\":");
    write_str(out, schema_url);
    out.extend_from_slice(b",\"type\":");
    write_str(out, kind);
    out.extend_from_slice(b",\"idKeys\":");
    write_strings(&id_keys, out);
    out.extend_from_slice(b",\"descriptionKeys\":");
    write_strings(&description_keys, out);
    out.push(b'}');
    Ok(())
}

fn write_strings(strings: &[&str], out: &mut Vec<u8>) {
    out.push(b'[');
    for (index, s) in strings.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

fn write_scope_logs(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut scope = None;
    let mut log_records = Items::new();
    let mut schema_url = "";
    each_field(parts, |f| {
        match f.number {
            container::SCOPE => merge(&mut scope, bytes(f, "scope")?),
            container::LOG_RECORDS => log_records.push(bytes(f, "logRecords")?),
            container::SCHEMA_URL => schema_url = string(f, "schemaUrl")?,
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"scope\":");
    match scope {
        Some(scope) => write_scope(&scope, out).map_err(|e| e.within("scope"))?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"logRecords\":");
    write_items(&log_records, "logRecords", out, |b, out| {
        write_log_record(&[b], out)
    })?;
    out.extend_from_slice(b",\"schemaUrl\":");
    write_str(out, schema_url);
    out.push(b'}');
    Ok(())
}

fn write_scope(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut name = "";
    let mut version = "";
    let mut attributes = Items::new();
    let mut dropped = 0u32;
    each_field(parts, |f| {
        match f.number {
            common::SCOPE_NAME => name = string(f, "name")?,
            common::SCOPE_VERSION => version = string(f, "version")?,
            common::SCOPE_ATTRIBUTES => attributes.push(bytes(f, "attributes")?),
            field::SCOPE_DROPPED_ATTRIBUTES_COUNT => {
                dropped = varint(f, "droppedAttributesCount")? as u32
            }
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"name\":");
    write_str(out, name);
    out.extend_from_slice(b",\"version\":");
    write_str(out, version);
    out.extend_from_slice(b",\"attributes\":");
    write_attributes(&attributes, out)?;
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    write_int(out, dropped);
    out.push(b'}');
    Ok(())
}

fn write_log_record(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    use log_record::*;
    let mut time = 0u64;
    let mut observed = 0u64;
    let mut severity = 0i32;
    let mut severity_text = "";
    let mut body = None;
    let mut attributes: SmallVec<[&[u8]; 16]> = SmallVec::new();
    let mut dropped = 0u32;
    let mut flags = 0u32;
    let mut trace_id: &[u8] = &[];
    let mut span_id: &[u8] = &[];
    let mut event_name = "";
    each_field(parts, |f| {
        match f.number {
            TIME_UNIX_NANO => time = fixed64(f, "timeUnixNano")?,
            OBSERVED_TIME_UNIX_NANO => observed = fixed64(f, "observedTimeUnixNano")?,
            SEVERITY_NUMBER => severity = varint(f, "severityNumber")? as i32,
            SEVERITY_TEXT => severity_text = string(f, "severityText")?,
            BODY => merge(&mut body, bytes(f, "body")?),
            ATTRIBUTES => attributes.push(bytes(f, "attributes")?),
            DROPPED_ATTRIBUTES_COUNT => dropped = varint(f, "droppedAttributesCount")? as u32,
            FLAGS => flags = fixed32(f, "flags")?,
            TRACE_ID => trace_id = bytes(f, "traceId")?,
            SPAN_ID => span_id = bytes(f, "spanId")?,
            EVENT_NAME => event_name = string(f, "eventName")?,
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"timeUnixNano\":");
    write_quoted_int(out, time);
    out.extend_from_slice(b",\"observedTimeUnixNano\":");
    write_quoted_int(out, observed);
    out.extend_from_slice(b",\"severityNumber\":");
    write_int(out, severity);
    out.extend_from_slice(b",\"severityText\":");
    write_str(out, severity_text);
    out.extend_from_slice(b",\"body\":");
    match body {
        Some(body) => write_any_value(&body, 1, out).map_err(|e| e.within("body"))?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"attributes\":");
    write_attributes(&attributes, out)?;
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    write_int(out, dropped);
    out.extend_from_slice(b",\"flags\":");
    write_int(out, flags);
    out.extend_from_slice(b",\"traceId\":");
    write_hex(out, trace_id);
    out.extend_from_slice(b",\"spanId\":");
    write_hex(out, span_id);
    out.extend_from_slice(b",\"eventName\":");
    write_str(out, event_name);
    out.push(b'}');
    Ok(())
}

/// `KeyValue`s whose values are at depth 1 (of a record, resource or scope).
fn write_attributes(attributes: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
    write_items(attributes, "attributes", out, |b, out| {
        write_key_value(&[b], 1, out)
    })
}

/// A `KeyValue` whose value is at `depth`.
fn write_key_value(parts: &[&[u8]], depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut key = "";
    let mut value = None;
    let mut key_strindex = 0i32;
    each_field(parts, |f| {
        match f.number {
            common::KEY => key = string(f, "key")?,
            common::VALUE => merge(&mut value, bytes(f, "value")?),
            field::KEY_STRINDEX => key_strindex = varint(f, "keyStrindex")? as i32,
            _ => {}
        }
        Ok(())
    })?;
    out.extend_from_slice(b"{\"key\":");
    write_str(out, key);
    out.extend_from_slice(b",\"value\":");
    match value {
        Some(value) => write_any_value(&value, depth, out).map_err(|e| e.within("value"))?,
        None => out.extend_from_slice(b"null"),
    }
    if key_strindex != 0 {
        out.extend_from_slice(b",\"keyStrindex\":");
        write_int(out, key_strindex);
    }
    out.push(b'}');
    Ok(())
}

/// The member of `AnyValue`'s oneof that a message holds. Protobuf keeps the
/// last member given; a message member given several times in a row merges.
enum Member<'a> {
    Empty,
    String(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Parts<'a>),
    Kvlist(Parts<'a>),
    Bytes(&'a [u8]),
    StringIndex(i32),
}

/// An `AnyValue` nested `depth` levels deep (1 for a body or attribute).
fn write_any_value(parts: &[&[u8]], depth: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    if depth > MAX_ANY_VALUE_DEPTH {
        return Err(error(too_deep()));
    }
    let mut member = Member::Empty;
    each_field(parts, |f| {
        member = match f.number {
            common::STRING_VALUE => Member::String(string(f, "stringValue")?),
            common::BOOL_VALUE => Member::Bool(varint(f, "boolValue")? != 0),
            common::INT_VALUE => Member::Int(varint(f, "intValue")? as i64),
            common::DOUBLE_VALUE => Member::Double(f64::from_bits(fixed64(f, "doubleValue")?)),
            common::ARRAY_VALUE => {
                let b = bytes(f, "arrayValue")?;
                match &mut member {
                    Member::Array(parts) => {
                        parts.push(b);
                        return Ok(());
                    }
                    _ => Member::Array(smallvec![b]),
                }
            }
            common::KVLIST_VALUE => {
                let b = bytes(f, "kvlistValue")?;
                match &mut member {
                    Member::Kvlist(parts) => {
                        parts.push(b);
                        return Ok(());
                    }
                    _ => Member::Kvlist(smallvec![b]),
                }
            }
            common::BYTES_VALUE => Member::Bytes(bytes(f, "bytesValue")?),
            common::STRING_VALUE_STRINDEX => {
                Member::StringIndex(varint(f, "stringValueStrindex")? as i32)
            }
            _ => return Ok(()),
        };
        Ok(())
    })?;
    match member {
        Member::Empty => out.extend_from_slice(b"{}"),
        Member::String(s) => {
            out.extend_from_slice(b"{\"stringValue\":");
            write_str(out, s);
            out.push(b'}');
        }
        Member::Bool(b) => out.extend_from_slice(if b {
            b"{\"boolValue\":true}"
        } else {
            b"{\"boolValue\":false}"
        }),
        Member::Int(i) => {
            out.extend_from_slice(b"{\"intValue\":");
            write_quoted_int(out, i);
            out.push(b'}');
        }
        Member::Double(d) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            write_double(out, d);
            out.push(b'}');
        }
        Member::Array(array) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":");
            let values = values(&array).map_err(|e| e.within("arrayValue"))?;
            write_items(&values, "values", out, |b, out| {
                write_any_value(&[b], depth + 1, out)
            })
            .map_err(|e| e.within("arrayValue"))?;
            out.extend_from_slice(b"}}");
        }
        Member::Kvlist(kvlist) => {
            out.extend_from_slice(b"{\"kvlistValue\":{\"values\":");
            let values = values(&kvlist).map_err(|e| e.within("kvlistValue"))?;
            write_items(&values, "values", out, |b, out| {
                write_key_value(&[b], depth + 1, out)
            })
            .map_err(|e| e.within("kvlistValue"))?;
            out.extend_from_slice(b"}}");
        }
        Member::Bytes(b) => {
            out.extend_from_slice(b"{\"bytesValue\":\"");
            let start = out.len();
            let len = base64::encoded_len(b.len(), true).unwrap_or_default();
            out.resize(start + len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut out[start..])
                .unwrap_or_default();
            out.truncate(start + written);
            out.extend_from_slice(b"\"}");
        }
        Member::StringIndex(i) => {
            out.extend_from_slice(b"{\"stringValueStrindex\":");
            write_int(out, i);
            out.push(b'}');
        }
    }
    Ok(())
}

/// The `values` of an `ArrayValue` or `KeyValueList`.
fn values<'a>(parts: &[&'a [u8]]) -> Result<Items<'a>, Error> {
    let mut values = Items::new();
    each_field(parts, |f| {
        if f.number == common::VALUES {
            values.push(bytes(f, "values")?);
        }
        Ok(())
    })?;
    Ok(values)
}

/// A double as serde_json writes it, except the values JSON numbers cannot
/// hold, written as the proto3 JSON mapping's strings.
fn write_double(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if value == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::ser::CompactFormatter.write_f64(out, value);
    }
}
