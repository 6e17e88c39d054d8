//! Read-only views of OTLP log messages, straight over their protobuf bytes.
//!
//! A receiver keeps the request it was sent and the collector reads records
//! in place through these views: strings are borrowed from the request, no
//! attribute is decoded into an owned struct. [`check_record`] walks a record
//! once at ingest — checking that it is well-formed protobuf (wire types,
//! UTF-8, nesting depth) and scanning its audit attributes — so that later
//! reads can trust the bytes.
//!
//! Protobuf semantics hold: for a scalar or oneof field that appears more
//! than once, the last occurrence wins (that is how ingest overrides
//! `observed_time_unix_nano` and `event_name` by appending fields).

use smallvec::SmallVec;

use crate::audit::{AttrValue, AuditAttributes};
use crate::conventions::AUDIT_ACTOR_PREFIX;
use crate::mapping::{MappingError, is_valid_name};
use crate::wire::{CheckedFields, Fields, WireError, WireValue, fields, short_bytes_field};

/// How deep `AnyValue`s may nest (an array in a kvlist in ... ), in
/// protobuf and OTLP/JSON alike.
pub const MAX_ANY_VALUE_DEPTH: usize = 32;

/// Field numbers of `opentelemetry.proto.logs.v1.LogRecord`.
pub mod log_record {
    pub const TIME_UNIX_NANO: u32 = 1;
    pub const SEVERITY_NUMBER: u32 = 2;
    pub const SEVERITY_TEXT: u32 = 3;
    pub const BODY: u32 = 5;
    pub const ATTRIBUTES: u32 = 6;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 7;
    pub const FLAGS: u32 = 8;
    pub const TRACE_ID: u32 = 9;
    pub const SPAN_ID: u32 = 10;
    pub const OBSERVED_TIME_UNIX_NANO: u32 = 11;
    pub const EVENT_NAME: u32 = 12;
}

/// Field numbers of the containers: `ExportLogsServiceRequest.resource_logs`,
/// `ResourceLogs` and `ScopeLogs`.
pub mod container {
    pub const REQUEST_RESOURCE_LOGS: u32 = 1;
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_LOGS: u32 = 2;
    pub const SCOPE: u32 = 1;
    pub const LOG_RECORDS: u32 = 2;
    pub const SCHEMA_URL: u32 = 3;
}

/// The one-byte keys (field number and wire type 2) of the common layouts
/// read on fast paths.
const KEY_TAG: u8 = (common::KEY as u8) << 3 | 2;
const VALUE_TAG: u8 = (common::VALUE as u8) << 3 | 2;
const STRING_VALUE_TAG: u8 = (common::STRING_VALUE as u8) << 3 | 2;

/// Field numbers of `KeyValue`, `AnyValue`, `Resource` and `InstrumentationScope`.
pub mod common {
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
    pub const STRING_VALUE: u32 = 1;
    pub const BOOL_VALUE: u32 = 2;
    pub const INT_VALUE: u32 = 3;
    pub const DOUBLE_VALUE: u32 = 4;
    pub const ARRAY_VALUE: u32 = 5;
    pub const KVLIST_VALUE: u32 = 6;
    pub const BYTES_VALUE: u32 = 7;
    pub const STRING_VALUE_STRINDEX: u32 = 8;
    /// `ArrayValue.values` and `KeyValueList.values`.
    pub const VALUES: u32 = 1;
    pub const RESOURCE_ATTRIBUTES: u32 = 1;
    pub const SCOPE_NAME: u32 = 1;
    pub const SCOPE_VERSION: u32 = 2;
    pub const SCOPE_ATTRIBUTES: u32 = 3;
    /// `Resource.dropped_attributes_count`.
    pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: u32 = 2;
    /// `InstrumentationScope.dropped_attributes_count`.
    pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: u32 = 4;
    /// `KeyValue.key_strindex` (profiling only).
    pub const KEY_STRINDEX: u32 = 3;
}

#[inline]
fn utf8(bytes: &[u8]) -> &str {
    // Checked at ingest; a view over unchecked bytes reads invalid text as empty.
    as_str(bytes).unwrap_or_default()
}

/// `bytes` as text, if UTF-8. Most OTLP strings are short ASCII, for which
/// `str::from_utf8`'s setup costs more than the check itself.
#[inline(always)]
pub fn as_str(bytes: &[u8]) -> Option<&str> {
    if is_ascii(bytes) {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Whether every byte is ASCII: `<[u8]>::is_ascii`, but a string shorter
/// than 8 bytes (most keys and values) is read in one or two words instead
/// of byte by byte.
#[inline(always)]
pub fn is_ascii(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 8 {
        return bytes.is_ascii();
    }
    if n >= 4 {
        let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        return (half(0) | half(n - 4)) & 0x8080_8080 == 0;
    }
    n == 0 || (bytes[0] | bytes[n / 2] | bytes[n - 1]) < 0x80
}

/// A `LogRecord`: its bytes as received plus, optionally, fields appended at
/// ingest (which win over the originals, protobuf's last-one-wins).
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    body: &'a [u8],
    patch: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// A view over an encoded `LogRecord` and fields appended to it.
    #[inline]
    pub fn new(body: &'a [u8], patch: &'a [u8]) -> Self {
        Self { body, patch }
    }

    /// Every field, in wire order.
    #[inline]
    pub fn fields(&self) -> std::iter::Chain<CheckedFields<'a>, CheckedFields<'a>> {
        fields(self.body).chain(fields(self.patch))
    }

    fn last(&self, number: u32) -> Option<WireValue<'a>> {
        self.fields()
            .filter(|f| f.number == number)
            .last()
            .map(|f| f.value)
    }

    /// `time_unix_nano` (0 = unknown).
    pub fn time_unix_nano(&self) -> u64 {
        self.last(log_record::TIME_UNIX_NANO)
            .and_then(WireValue::fixed64)
            .unwrap_or(0)
    }

    /// `observed_time_unix_nano`.
    pub fn observed_time_unix_nano(&self) -> u64 {
        self.last(log_record::OBSERVED_TIME_UNIX_NANO)
            .and_then(WireValue::fixed64)
            .unwrap_or(0)
    }

    /// The severity number.
    pub fn severity_number(&self) -> i32 {
        self.last(log_record::SEVERITY_NUMBER)
            .and_then(WireValue::varint)
            .map_or(0, |v| v as i32)
    }

    /// The event name, empty when absent.
    pub fn event_name(&self) -> &'a str {
        self.last(log_record::EVENT_NAME)
            .and_then(WireValue::bytes)
            .map_or("", utf8)
    }

    /// The body, `None` when absent.
    pub fn body(&self) -> Option<AnyValueView<'a>> {
        self.last(log_record::BODY)
            .and_then(WireValue::bytes)
            .map(AnyValueView::parse)
    }

    /// The attributes, in order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            inner: self.fields(),
            number: log_record::ATTRIBUTES,
        }
    }

    /// The string value of the first attribute named `key`.
    pub fn str_attribute(&self, key: &str) -> Option<&'a str> {
        self.attributes()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_str())
    }

    /// The audit attributes, in one pass.
    pub fn audit(&self) -> AuditAttributes<'a> {
        AuditAttributes::scan(self.attributes().map(|kv| (kv.key, kv.value.attr())))
    }
}

/// The `KeyValue`s of field `number` of a message.
#[derive(Clone)]
pub struct Attributes<'a> {
    inner: AttributeFields<'a>,
    number: u32,
}

type AttributeFields<'a> = std::iter::Chain<CheckedFields<'a>, CheckedFields<'a>>;

impl<'a> Attributes<'a> {
    /// The attributes (field `number`) of the message in `bytes`: a
    /// `Resource` or `InstrumentationScope`.
    pub fn of_message(bytes: &'a [u8], number: u32) -> Self {
        Self {
            inner: fields(bytes).chain(fields(&[])),
            number,
        }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = KeyValueView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let field = self.inner.next()?;
            if field.number == self.number
                && let WireValue::Bytes(b) = field.value
            {
                return Some(KeyValueView::parse(b));
            }
        }
    }
}

/// A `KeyValue`.
#[derive(Clone, Copy, Debug)]
pub struct KeyValueView<'a> {
    /// The key.
    pub key: &'a str,
    /// The value; `Empty` when absent.
    pub value: AnyValueView<'a>,
}

impl<'a> KeyValueView<'a> {
    /// Reads an encoded `KeyValue`.
    #[inline(always)]
    pub fn parse(bytes: &'a [u8]) -> Self {
        // The usual layout, key then value, read without the field loop.
        if let Some((key, end)) = short_bytes_field(bytes, 0, KEY_TAG)
            && let Some((value, end)) = short_bytes_field(bytes, end, VALUE_TAG)
            && end == bytes.len()
        {
            return Self {
                key: utf8(key),
                value: AnyValueView::parse(value),
            };
        }
        Self::parse_fields(bytes)
    }

    #[inline(never)]
    fn parse_fields(bytes: &'a [u8]) -> Self {
        let mut key = "";
        let mut value = AnyValueView::Empty;
        for field in fields(bytes) {
            match (field.number, field.value) {
                (common::KEY, WireValue::Bytes(b)) => key = utf8(b),
                (common::VALUE, WireValue::Bytes(b)) => value = AnyValueView::parse(b),
                _ => {}
            }
        }
        Self { key, value }
    }
}

/// An `AnyValue`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnyValueView<'a> {
    /// No value (or a profiling-only string-table index, meaningless in logs).
    Empty,
    /// `stringValue`.
    String(&'a str),
    /// `boolValue`.
    Bool(bool),
    /// `intValue`.
    Int(i64),
    /// `doubleValue`.
    Double(f64),
    /// `bytesValue`.
    Bytes(&'a [u8]),
    /// `arrayValue`: the encoded `ArrayValue`.
    Array(ArrayView<'a>),
    /// `kvlistValue`: the encoded `KeyValueList`.
    Kvlist(KvlistView<'a>),
}

impl<'a> AnyValueView<'a> {
    /// Reads an encoded `AnyValue`; the last member of the oneof wins.
    #[inline(always)]
    pub fn parse(bytes: &'a [u8]) -> Self {
        // The usual layout, one short string, read without the field loop.
        if let Some((text, end)) = short_bytes_field(bytes, 0, STRING_VALUE_TAG)
            && end == bytes.len()
        {
            return Self::String(utf8(text));
        }
        Self::parse_fields(bytes)
    }

    #[inline(never)]
    fn parse_fields(bytes: &'a [u8]) -> Self {
        let mut value = Self::Empty;
        for field in fields(bytes) {
            value = match (field.number, field.value) {
                (common::STRING_VALUE, WireValue::Bytes(b)) => Self::String(utf8(b)),
                (common::BOOL_VALUE, WireValue::Varint(v)) => Self::Bool(v != 0),
                (common::INT_VALUE, WireValue::Varint(v)) => Self::Int(v as i64),
                (common::DOUBLE_VALUE, WireValue::Fixed64(v)) => Self::Double(f64::from_bits(v)),
                (common::ARRAY_VALUE, WireValue::Bytes(b)) => Self::Array(ArrayView(b)),
                (common::KVLIST_VALUE, WireValue::Bytes(b)) => Self::Kvlist(KvlistView(b)),
                (common::BYTES_VALUE, WireValue::Bytes(b)) => Self::Bytes(b),
                (common::STRING_VALUE_STRINDEX, _) => Self::Empty,
                _ => continue,
            };
        }
        value
    }

    /// The string, when this is a `stringValue`.
    #[inline]
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn attr(&self) -> AttrValue<'a> {
        match self {
            Self::String(s) => AttrValue::Str(s),
            _ => AttrValue::Other,
        }
    }
}

/// The items of an `ArrayValue`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArrayView<'a>(&'a [u8]);

impl<'a> ArrayView<'a> {
    /// The items, in order.
    #[inline]
    pub fn values(&self) -> impl Iterator<Item = AnyValueView<'a>> + use<'a> {
        fields(self.0).filter_map(|f| match (f.number, f.value) {
            (common::VALUES, WireValue::Bytes(b)) => Some(AnyValueView::parse(b)),
            _ => None,
        })
    }
}

/// The entries of a `KeyValueList`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KvlistView<'a>(&'a [u8]);

impl<'a> KvlistView<'a> {
    /// The entries, in order (keys may repeat).
    #[inline]
    pub fn values(&self) -> impl Iterator<Item = KeyValueView<'a>> + Clone + use<'a> {
        fields(self.0).filter_map(|f| match (f.number, f.value) {
            (common::VALUES, WireValue::Bytes(b)) => Some(KeyValueView::parse(b)),
            _ => None,
        })
    }
}

/// Why a message is not acceptable: where (a path of OTLP/JSON field names
/// relative to the message checked) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct CheckError {
    /// E.g. `attributes[2].value.kvlistValue.values[0].key`; empty for the message itself.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl CheckError {
    /// An error about the message itself (empty path).
    pub fn from_reason(reason: impl Into<String>) -> Self {
        Self::new(reason)
    }

    fn new(reason: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            reason: reason.into(),
        }
    }

    fn wire(e: WireError) -> Self {
        Self::new(format!("invalid protobuf: {e}"))
    }

    /// Prefixes the path with `segment` (a field name, maybe with an index).
    pub fn within(mut self, segment: &str) -> Self {
        self.path = if self.path.is_empty() {
            segment.to_owned()
        } else if self.path.starts_with('[') {
            format!("{segment}{}", self.path)
        } else {
            format!("{segment}.{}", self.path)
        };
        self
    }
}

/// What [`check_record`] learned about a well-formed record.
#[derive(Debug, Clone)]
pub struct RecordCheck<'a> {
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `observed_time_unix_nano`.
    pub observed_time_unix_nano: u64,
    /// `event_name` (the last one when repeated), empty when absent.
    pub event_name: &'a str,
    /// The audit attributes.
    pub audit: AuditAttributes<'a>,
    /// The encoded body (`AnyValue`), the last one when repeated.
    pub body: Option<&'a [u8]>,
    /// The encoded `KeyValue`s of the `audit.actor.*` attributes, in order.
    pub actor: SmallVec<[&'a [u8]; 4]>,
}

/// Checks one encoded `LogRecord` — well-formed protobuf, UTF-8 strings,
/// `AnyValue`s nested at most [`MAX_ANY_VALUE_DEPTH`] deep — and scans its
/// audit attributes, in one pass. The audit conventions are not checked
/// here: see [`AuditAttributes::check`].
pub fn check_record(bytes: &[u8]) -> Result<RecordCheck<'_>, CheckError> {
    use log_record::*;
    let mut check = RecordCheck {
        time_unix_nano: 0,
        observed_time_unix_nano: 0,
        event_name: "",
        audit: AuditAttributes::default(),
        body: None,
        actor: SmallVec::new(),
    };
    let mut attribute = 0usize;
    for field in Fields::new(bytes) {
        let field = field.map_err(CheckError::wire)?;
        let name = match field.number {
            TIME_UNIX_NANO => "timeUnixNano",
            SEVERITY_NUMBER => "severityNumber",
            SEVERITY_TEXT => "severityText",
            BODY => "body",
            ATTRIBUTES => "attributes",
            DROPPED_ATTRIBUTES_COUNT => "droppedAttributesCount",
            FLAGS => "flags",
            TRACE_ID => "traceId",
            SPAN_ID => "spanId",
            OBSERVED_TIME_UNIX_NANO => "observedTimeUnixNano",
            EVENT_NAME => "eventName",
            _ => continue, // unknown fields are kept as they are
        };
        let expected = match field.number {
            TIME_UNIX_NANO | OBSERVED_TIME_UNIX_NANO => 1,
            SEVERITY_NUMBER | DROPPED_ATTRIBUTES_COUNT => 0,
            FLAGS => 5,
            _ => 2,
        };
        if field.value.wire_type() != expected {
            return Err(CheckError::new(format!(
                "invalid protobuf: wire type {} where {expected} is expected",
                field.value.wire_type()
            ))
            .within(name));
        }
        match (field.number, field.value) {
            (TIME_UNIX_NANO, WireValue::Fixed64(v)) => check.time_unix_nano = v,
            (OBSERVED_TIME_UNIX_NANO, WireValue::Fixed64(v)) => check.observed_time_unix_nano = v,
            (SEVERITY_TEXT, WireValue::Bytes(b)) => {
                check_utf8(b).map_err(|e| e.within(name))?;
            }
            // OTLP/JSON can only spell ids of these lengths (hex), and its
            // decoder refuses others: refused here too, so that a record
            // let in can always be written as OTLP/JSON and read back.
            (TRACE_ID, WireValue::Bytes(b)) if !matches!(b.len(), 0 | 16) => {
                return Err(CheckError::new(format!(
                    "a trace id has 16 bytes (or none), this one has {}",
                    b.len()
                ))
                .within(name));
            }
            (SPAN_ID, WireValue::Bytes(b)) if !matches!(b.len(), 0 | 8) => {
                return Err(CheckError::new(format!(
                    "a span id has 8 bytes (or none), this one has {}",
                    b.len()
                ))
                .within(name));
            }
            (EVENT_NAME, WireValue::Bytes(b)) => {
                check.event_name = check_utf8(b).map_err(|e| e.within(name))?;
            }
            (BODY, WireValue::Bytes(b)) => {
                if check.body.is_some() {
                    return Err(repeated_message("a log record has one body").within(name));
                }
                check_any_value(b, 1).map_err(|e| e.within(name))?;
                check.body = Some(b);
            }
            (ATTRIBUTES, WireValue::Bytes(b)) => {
                let kv = check_key_value(b, 1)
                    .map_err(|e| e.within(&format!("attributes[{attribute}]")))?;
                if let Some(field) = kv.key.strip_prefix(AUDIT_ACTOR_PREFIX) {
                    if !is_valid_name(field) {
                        return Err(CheckError::from(MappingError::InvalidName {
                            key: "audit.actor.*",
                            value: field.to_owned(),
                            what: "actor field name",
                        })
                        .within(&format!("attributes[{attribute}].key")));
                    }
                    check.actor.push(b);
                } else {
                    check.audit.add(kv.key, kv.value.attr());
                }
                attribute += 1;
            }
            _ => {}
        }
    }
    Ok(check)
}

/// Checks an encoded `Resource` or `InstrumentationScope`: well-formed, its
/// strings UTF-8, its attributes valid, its integers varints.
/// `attributes_field` is 1 for a resource and 3 for a scope;
/// `string_fields` and `varint_fields` the numbers of its strings and
/// integers (`dropped_attributes_count`). A known field with another wire
/// type is refused: the batch forwards these bytes, and a protobuf reader
/// downstream would refuse the whole request for it.
pub fn check_attributes_holder(
    bytes: &[u8],
    attributes_field: u32,
    string_fields: &[u32],
    varint_fields: &[u32],
) -> Result<(), CheckError> {
    let mut attribute = 0usize;
    for field in Fields::new(bytes) {
        let field = field.map_err(CheckError::wire)?;
        if field.number == attributes_field {
            let b = expect_bytes(field.value).map_err(|e| e.within("attributes"))?;
            check_key_value(b, 1).map_err(|e| e.within(&format!("attributes[{attribute}]")))?;
            attribute += 1;
        } else if string_fields.contains(&field.number) {
            check_utf8(expect_bytes(field.value)?)?;
        } else if varint_fields.contains(&field.number) {
            expect_varint(field.value)?;
        }
    }
    Ok(())
}

fn expect_varint(value: WireValue<'_>) -> Result<u64, CheckError> {
    value.varint().ok_or_else(|| {
        CheckError::new(format!(
            "invalid protobuf: wire type {} where 0 is expected",
            value.wire_type()
        ))
    })
}

fn expect_bytes(value: WireValue<'_>) -> Result<&[u8], CheckError> {
    value.bytes().ok_or_else(|| {
        CheckError::new(format!(
            "invalid protobuf: wire type {} where 2 is expected",
            value.wire_type()
        ))
    })
}

/// Checks that `bytes` is UTF-8.
#[inline(always)]
pub fn check_utf8(bytes: &[u8]) -> Result<&str, CheckError> {
    match as_str(bytes) {
        Some(text) => Ok(text),
        None => Err(utf8_error(bytes)),
    }
}

#[cold]
fn utf8_error(bytes: &[u8]) -> CheckError {
    let detail = std::str::from_utf8(bytes)
        .err()
        .map_or_else(String::new, |e| format!(" ({e})"));
    CheckError::new(format!("invalid protobuf: string is not UTF-8{detail}"))
}

#[inline(always)]
fn check_key_value(bytes: &[u8], depth: usize) -> Result<KeyValueView<'_>, CheckError> {
    // The usual layout, key then value: the same checks without the loop,
    // and a string value (the most common) without a call.
    if let Some((key, end)) = short_bytes_field(bytes, 0, KEY_TAG)
        && let Some((value, end)) = short_bytes_field(bytes, end, VALUE_TAG)
        && end == bytes.len()
    {
        let key = check_utf8(key).map_err(|e| e.within("key"))?;
        if depth <= MAX_ANY_VALUE_DEPTH
            && let Some((text, end)) = short_bytes_field(value, 0, STRING_VALUE_TAG)
            && end == value.len()
        {
            let text = check_utf8(text).map_err(|e| e.within("stringValue").within("value"))?;
            return Ok(KeyValueView {
                key,
                value: AnyValueView::String(text),
            });
        }
        return Ok(KeyValueView {
            key,
            value: check_any_value(value, depth).map_err(|e| e.within("value"))?,
        });
    }
    check_key_value_fields(bytes, depth)
}

#[inline(never)]
fn check_key_value_fields(bytes: &[u8], depth: usize) -> Result<KeyValueView<'_>, CheckError> {
    let mut kv = KeyValueView {
        key: "",
        value: AnyValueView::Empty,
    };
    let mut has_value = false;
    for field in Fields::new(bytes) {
        let field = field.map_err(CheckError::wire)?;
        match field.number {
            common::KEY => {
                kv.key = check_utf8(expect_bytes(field.value)?).map_err(|e| e.within("key"))?
            }
            common::VALUE => {
                if has_value {
                    return Err(repeated_message("a key-value pair has one value").within("value"));
                }
                has_value = true;
                let b = expect_bytes(field.value).map_err(|e| e.within("value"))?;
                kv.value = check_any_value(b, depth).map_err(|e| e.within("value"))?;
            }
            common::KEY_STRINDEX => {
                expect_varint(field.value).map_err(|e| e.within("keyStrindex"))?;
            }
            _ => {}
        }
    }
    Ok(kv)
}

/// Checks an `AnyValue` and returns what [`AnyValueView::parse`] would.
fn check_any_value(bytes: &[u8], depth: usize) -> Result<AnyValueView<'_>, CheckError> {
    if depth > MAX_ANY_VALUE_DEPTH {
        return Err(CheckError::new(format!(
            "values nest more than {MAX_ANY_VALUE_DEPTH} levels deep"
        )));
    }
    if let Some((text, end)) = short_bytes_field(bytes, 0, STRING_VALUE_TAG)
        && end == bytes.len()
    {
        return Ok(AnyValueView::String(
            check_utf8(text).map_err(|e| e.within("stringValue"))?,
        ));
    }
    let mut value = AnyValueView::Empty;
    let mut first_member: Option<&str> = None;
    for field in Fields::new(bytes) {
        let field = field.map_err(CheckError::wire)?;
        let (name, expected) = match field.number {
            common::STRING_VALUE => ("stringValue", 2),
            common::BOOL_VALUE => ("boolValue", 0),
            common::INT_VALUE => ("intValue", 0),
            common::DOUBLE_VALUE => ("doubleValue", 1),
            common::ARRAY_VALUE => ("arrayValue", 2),
            common::KVLIST_VALUE => ("kvlistValue", 2),
            common::BYTES_VALUE => ("bytesValue", 2),
            common::STRING_VALUE_STRINDEX => ("stringValueStrindex", 0),
            _ => continue,
        };
        if field.value.wire_type() != expected {
            return Err(CheckError::new(format!(
                "invalid protobuf: wire type {} where {expected} is expected",
                field.value.wire_type()
            ))
            .within(name));
        }
        if let Some(first) = first_member {
            return Err(CheckError::new(format!(
                "an AnyValue holds one value, this one has {first} and then {name}: send one"
            )));
        }
        first_member = Some(name);
        value = match (field.number, field.value) {
            (common::STRING_VALUE, WireValue::Bytes(b)) => {
                AnyValueView::String(check_utf8(b).map_err(|e| e.within(name))?)
            }
            (common::ARRAY_VALUE, WireValue::Bytes(b)) => {
                check_list(b, depth, false).map_err(|e| e.within(name))?;
                AnyValueView::Array(ArrayView(b))
            }
            (common::KVLIST_VALUE, WireValue::Bytes(b)) => {
                check_list(b, depth, true).map_err(|e| e.within(name))?;
                AnyValueView::Kvlist(KvlistView(b))
            }
            (common::BOOL_VALUE, WireValue::Varint(v)) => AnyValueView::Bool(v != 0),
            (common::INT_VALUE, WireValue::Varint(v)) => AnyValueView::Int(v as i64),
            (common::DOUBLE_VALUE, WireValue::Fixed64(v)) => {
                AnyValueView::Double(f64::from_bits(v))
            }
            (common::BYTES_VALUE, WireValue::Bytes(b)) => AnyValueView::Bytes(b),
            _ => AnyValueView::Empty,
        };
    }
    Ok(value)
}

/// A message field given more than once. Protobuf readers merge the
/// occurrences, while the views read the last one: such a record would
/// read differently in auditcol's output and in a protobuf library, so it
/// is refused (no encoder writes one; a concatenation of two messages can).
fn repeated_message(what: &str) -> CheckError {
    CheckError::new(format!("appears more than once ({what}): send it once"))
}

fn check_list(bytes: &[u8], depth: usize, kvlist: bool) -> Result<(), CheckError> {
    let mut n = 0usize;
    for field in Fields::new(bytes) {
        let field = field.map_err(CheckError::wire)?;
        if field.number != common::VALUES {
            continue;
        }
        let b = expect_bytes(field.value).map_err(|e| e.within("values"))?;
        let checked = if kvlist {
            check_key_value(b, depth + 1).map(|_| ())
        } else {
            check_any_value(b, depth + 1).map(|_| ())
        };
        checked.map_err(|e| e.within(&format!("values[{n}]")))?;
        n += 1;
    }
    Ok(())
}

impl From<MappingError> for CheckError {
    fn from(e: MappingError) -> Self {
        CheckError::new(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conventions::{AUDIT_ACTION, AUDIT_TYPE};
    use crate::mapping::string_kv;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, KeyValue, any_value::Value,
    };
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use prost::Message;

    proptest::proptest! {
        #[test]
        fn is_ascii_agrees_with_the_standard_library(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), ascii in proptest::collection::vec(0u8..0x80, 0..20)) {
            proptest::prop_assert_eq!(super::is_ascii(&bytes), bytes.is_ascii());
            proptest::prop_assert!(super::is_ascii(&ascii));
            for at in 0..ascii.len() {
                let mut one = ascii.clone();
                one[at] |= 0x80;
                proptest::prop_assert!(!super::is_ascii(&one));
            }
        }
    }

    fn nested(depth: usize) -> AnyValue {
        let mut v = AnyValue {
            value: Some(Value::IntValue(1)),
        };
        for _ in 1..depth {
            v = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
            };
        }
        v
    }

    #[test]
    fn a_record_reads_back_what_prost_encoded() {
        let record = LogRecord {
            time_unix_nano: 5,
            observed_time_unix_nano: 6,
            severity_number: 13,
            event_name: "audit.flag.created".into(),
            attributes: vec![
                string_kv(AUDIT_TYPE, "flag"),
                string_kv(AUDIT_ACTION, "created"),
            ],
            body: Some(AnyValue {
                value: Some(Value::StringValue("hi".into())),
            }),
            ..Default::default()
        };
        let bytes = record.encode_to_vec();
        let view = RecordView::new(&bytes, &[]);
        assert_eq!(view.time_unix_nano(), 5);
        assert_eq!(view.observed_time_unix_nano(), 6);
        assert_eq!(view.severity_number(), 13);
        assert_eq!(view.event_name(), "audit.flag.created");
        assert_eq!(view.body(), Some(AnyValueView::String("hi")));
        assert_eq!(view.str_attribute(AUDIT_ACTION), Some("created"));
        let check = check_record(&bytes).unwrap();
        assert_eq!(
            (check.time_unix_nano, check.observed_time_unix_nano),
            (5, 6)
        );
        assert_eq!(check.audit.noun, Some("flag"));
        assert_eq!(check.event_name, "audit.flag.created");
    }

    #[test]
    fn appended_fields_win() {
        let bytes = LogRecord {
            observed_time_unix_nano: 6,
            ..Default::default()
        }
        .encode_to_vec();
        let mut patch = Vec::new();
        crate::wire::put_fixed64(&mut patch, log_record::OBSERVED_TIME_UNIX_NANO, 9);
        assert_eq!(RecordView::new(&bytes, &patch).observed_time_unix_nano(), 9);
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_with_its_path() {
        let ok = LogRecord {
            body: Some(nested(MAX_ANY_VALUE_DEPTH)),
            ..Default::default()
        };
        assert!(check_record(&ok.encode_to_vec()).is_ok());
        let deep = LogRecord {
            body: Some(nested(MAX_ANY_VALUE_DEPTH + 1)),
            ..Default::default()
        };
        let err = check_record(&deep.encode_to_vec()).unwrap_err();
        assert!(err.path.starts_with("body.arrayValue.values[0]"), "{err}");
        assert!(err.reason.contains("nest"), "{err}");
    }

    /// Found by the `otlp_protobuf` fuzz target: protobuf readers merge a
    /// message field given twice (`{"a":"x"}` and `{"b":7}` read as
    /// `{"a":"x","b":7}`), the views read the last one, so the `json` output
    /// and an OTLP backend would disagree on the event.
    #[test]
    fn a_message_field_given_twice_is_refused_with_its_path() {
        let kvlist = |key: &str, value: Value| AnyValue {
            value: Some(Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![KeyValue {
                        key: key.into(),
                        value: Some(AnyValue { value: Some(value) }),
                        key_strindex: 0,
                    }],
                },
            )),
        };
        let with_body = |body| {
            LogRecord {
                body: Some(body),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let mut twice = with_body(kvlist("a", Value::StringValue("x".into())));
        twice.extend(with_body(kvlist("b", Value::IntValue(7))));
        let err = check_record(&twice).unwrap_err();
        assert_eq!(err.path, "body");
        assert!(err.reason.contains("appears more than once"), "{err}");

        // A key-value pair with its value twice.
        let mut pair = string_kv("k", "x").encode_to_vec();
        pair.extend(string_kv("", "y").encode_to_vec()); // an empty key is not written: the value only
        let mut record = Vec::new();
        crate::wire::put_bytes(&mut record, log_record::ATTRIBUTES, &pair);
        let err = check_record(&record).unwrap_err();
        assert_eq!(err.path, "attributes[0].value");

        // An AnyValue with two members: merged or replaced, depending on the reader.
        let mut any = AnyValue {
            value: Some(Value::StringValue("a".into())),
        }
        .encode_to_vec();
        any.extend(
            AnyValue {
                value: Some(Value::IntValue(1)),
            }
            .encode_to_vec(),
        );
        let mut record = Vec::new();
        crate::wire::put_bytes(&mut record, log_record::BODY, &any);
        let err = check_record(&record).unwrap_err();
        assert_eq!(err.path, "body");
        assert!(
            err.reason.contains("stringValue and then intValue"),
            "{err}"
        );
    }

    /// Found by the `otlp_protobuf` fuzz target: a 6-byte trace id was let
    /// in, written as 12 hex digits in OTLP/JSON output, which the OTLP/JSON
    /// decoder refuses — a Kafka `otlp_json` message auditcol wrote could
    /// not be read back by auditcol.
    #[test]
    fn trace_and_span_ids_of_other_lengths_are_refused() {
        for (trace, span, path) in [
            (vec![1; 6], vec![], Some("traceId")),
            (vec![], vec![1; 16], Some("spanId")),
            (vec![1; 16], vec![2; 8], None),
            (vec![], vec![], None),
        ] {
            let record = LogRecord {
                trace_id: trace,
                span_id: span,
                ..Default::default()
            };
            let bytes = record.encode_to_vec();
            let result = check_record(&bytes);
            match path {
                Some(path) => assert_eq!(result.unwrap_err().path, path),
                None => assert!(result.is_ok()),
            }
        }
    }

    #[test]
    fn invalid_utf8_and_wrong_wire_types_are_refused_with_their_path() {
        let record = LogRecord {
            attributes: vec![
                string_kv("a", "b"),
                KeyValue {
                    key: "k".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("é".into())),
                    }),
                    key_strindex: 0,
                },
            ],
            ..Default::default()
        };
        let mut bytes = record.encode_to_vec();
        let at = bytes.len() - 1; // second byte of "é"
        bytes[at] = 0xff;
        let err = check_record(&bytes).unwrap_err();
        assert_eq!(err.path, "attributes[1].value.stringValue");
        // time_unix_nano (field 1) sent as a varint
        let err = check_record(&[0x08, 0x01]).unwrap_err();
        assert_eq!(err.path, "timeUnixNano");
    }
}
