//! OTLP/JSON → protobuf in one streaming parse.
//!
//! `serde_json` drives; seeds and visitors (one per kind of value, driven by
//! a table of fields per message) append wire bytes to the output as values
//! arrive:
//!
//! - An embedded message is framed with [`begin_bytes`]/[`end_bytes`]: a
//!   one-byte length placeholder, the payload written in place, then the
//!   length, moving the payload right only when it is 128 bytes or longer.
//! - Each known field of a message is a contiguous segment of its payload
//!   (a repeated field is one JSON array, so one segment). When the JSON gave
//!   the fields out of field-number order (serde's own output puts
//!   `observedTimeUnixNano` second), the segments are put back in order
//!   through a scratch buffer before the length is written, so the output is
//!   canonical whatever the order of the keys.
//! - Integers, doubles, booleans and enums are read from the raw JSON text
//!   of the value (`RawValue`): a number or a string holding one, read
//!   exactly by [`super::number`].
//! - `AnyValue` depth is counted and bounded; serde_json's own recursion
//!   limit is off (it would cut in below 32 levels of `AnyValue`, each being
//!   up to four JSON levels). Unknown fields are skipped by serde_json's
//!   iterative `ignore_value`, so no input can exhaust the stack.
//!
//! On error the path is where the parse stopped: a stack of segments pushed
//! before each value and popped after it.

use std::collections::HashSet;
use std::fmt;

use auditcol_model::view::{MAX_ANY_VALUE_DEPTH, common, container, log_record};
use auditcol_model::wire::{
    begin_bytes, end_bytes, put_bytes, put_fixed32, put_fixed64, put_key, put_varint,
};
use base64::Engine as _;
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::number::{IntError, parse_double, parse_integer};
use super::{JsonError, field, too_deep};

pub(super) fn json_to_protobuf(json: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    // JSON text is UTF-8 (RFC 8259). Checked once over the whole body, the
    // parser need not check each string again (a sixth of its time with
    // serde_json's slice reader). A body that is not UTF-8 is parsed by the
    // slice reader, which says in which string and field the bad bytes are.
    match std::str::from_utf8(json) {
        Ok(text) => transcode(serde_json::Deserializer::from_str(text), out),
        Err(_) => transcode(serde_json::Deserializer::from_slice(json), out),
    }
}

fn transcode<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    out: &mut Vec<u8>,
) -> Result<(), JsonError> {
    let start = out.len();
    de.disable_recursion_limit();
    let mut cx = Decoder {
        out: &mut *out,
        scratch: Vec::new(),
        path: Vec::new(),
        reason: None,
    };
    let parsed = MessageSeed {
        cx: &mut cx,
        msg: Msg::Request,
        number: None,
        nullable: false,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match parsed {
        Ok(()) => Ok(()),
        Err(e) => {
            let error = cx.into_error(&e);
            out.truncate(start);
            Err(error)
        }
    }
}

/// The state of one conversion, shared by all seeds.
struct Decoder<'o> {
    out: &'o mut Vec<u8>,
    /// Where out-of-order messages are put back in order.
    scratch: Vec<u8>,
    /// Where the parse is.
    path: Vec<Segment>,
    /// Why the conversion failed, when a visitor refused a value (rather
    /// than serde_json the syntax).
    reason: Option<String>,
}

#[derive(Clone, Copy)]
enum Segment {
    Field(&'static str),
    Index(usize),
}

impl Decoder<'_> {
    /// Records why the conversion fails and returns the error that stops it.
    fn fail<E: de::Error>(&mut self, reason: String) -> E {
        let error = E::custom(&reason);
        self.reason = Some(reason);
        error
    }

    fn into_error(self, e: &serde_json::Error) -> JsonError {
        let mut path = String::new();
        for segment in &self.path {
            match segment {
                Segment::Field(name) if path.is_empty() => path.push_str(name),
                Segment::Field(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Segment::Index(i) => {
                    use fmt::Write as _;
                    let _ = write!(path, "[{i}]");
                }
            }
        }
        let reason = self.reason.unwrap_or_else(|| format!("invalid JSON: {e}"));
        JsonError { path, reason }
    }

    /// Ends the embedded message whose payload started at `start`: puts its
    /// fields in field-number order if they came otherwise, then writes its
    /// length.
    fn finish(&mut self, start: usize, segments: &Segments) {
        if !segments.in_order() {
            self.scratch.clear();
            for (from, to) in segments.in_field_order(self.out.len()) {
                self.scratch.extend_from_slice(&self.out[from..to]);
            }
            self.out.truncate(start);
            self.out.extend_from_slice(&self.scratch);
        }
        end_bytes(self.out, start);
    }
}

/// Where each known field of a message being written starts, in the order
/// written. Each field appears at most once (a repeated field is one JSON
/// array), so a message's field count bounds it.
struct Segments {
    starts: [(u32, usize); MAX_FIELDS],
    len: usize,
}

/// The most fields a message has (`LogRecord`: 11).
const MAX_FIELDS: usize = 12;

impl Segments {
    fn new() -> Self {
        Self {
            starts: [(0, 0); MAX_FIELDS],
            len: 0,
        }
    }

    fn push(&mut self, number: u32, start: usize) {
        // The field table holds at most MAX_FIELDS entries and each is seen once.
        self.starts[self.len] = (number, start);
        self.len += 1;
    }

    fn in_order(&self) -> bool {
        self.starts[..self.len].is_sorted_by_key(|&(number, _)| number)
    }

    /// The byte ranges of the fields, in field-number order; the last one
    /// ends at `end`.
    fn in_field_order(&self, end: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut order: [usize; MAX_FIELDS] = std::array::from_fn(|i| i);
        order[..self.len].sort_by_key(|&i| self.starts[i].0);
        (0..self.len).map(move |n| {
            let i = order[n];
            let to = if i + 1 < self.len {
                self.starts[i + 1].1
            } else {
                end
            };
            (self.starts[i].1, to)
        })
    }
}

/// The messages of an `ExportLogsServiceRequest`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Msg {
    Request,
    ResourceLogs,
    Resource,
    EntityRef,
    ScopeLogs,
    Scope,
    LogRecord,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// How a field's JSON value becomes wire bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Message(Msg),
    RepeatedMessage(Msg),
    RepeatedString,
    String,
    /// A trace or span id: hex digits for this many bytes.
    HexId(usize),
    Base64,
    /// Read from the raw JSON text of the value.
    Scalar(Scalar),
}

/// A field read from the raw text of its JSON value: a number, a string
/// holding one, a name, `true` or `false`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scalar {
    Fixed64,
    Fixed32,
    Uint32,
    Int32,
    Int64,
    Severity,
    Bool,
    Double,
}

/// One field of a message.
struct FieldSpec {
    /// The lowerCamelCase JSON name (used in paths).
    name: &'static str,
    /// The original proto name, also accepted.
    proto_name: &'static str,
    number: u32,
    kind: Kind,
    /// A member of a oneof: written even when it holds the default value.
    oneof: bool,
}

const fn spec(name: &'static str, proto_name: &'static str, number: u32, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        proto_name,
        number,
        kind,
        oneof: false,
    }
}

const fn oneof(name: &'static str, proto_name: &'static str, number: u32, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        proto_name,
        number,
        kind,
        oneof: true,
    }
}

// The field tables, one row per field: JSON name, proto name, number, kind.

#[rustfmt::skip]
const REQUEST: [FieldSpec; 1] = [
    spec("resourceLogs", "resource_logs", container::REQUEST_RESOURCE_LOGS, Kind::RepeatedMessage(Msg::ResourceLogs)),
];

#[rustfmt::skip]
const RESOURCE_LOGS: [FieldSpec; 3] = [
    spec("resource", "resource", container::RESOURCE, Kind::Message(Msg::Resource)),
    spec("scopeLogs", "scope_logs", container::SCOPE_LOGS, Kind::RepeatedMessage(Msg::ScopeLogs)),
    spec("schemaUrl", "schema_url", container::SCHEMA_URL, Kind::String),
];

#[rustfmt::skip]
const RESOURCE: [FieldSpec; 3] = [
    spec("attributes", "attributes", common::RESOURCE_ATTRIBUTES, Kind::RepeatedMessage(Msg::KeyValue)),
    spec("droppedAttributesCount", "dropped_attributes_count", field::RESOURCE_DROPPED_ATTRIBUTES_COUNT, Kind::Scalar(Scalar::Uint32)),
    spec("entityRefs", "entity_refs", field::RESOURCE_ENTITY_REFS, Kind::RepeatedMessage(Msg::EntityRef)),
];

#[rustfmt::skip]
const ENTITY_REF: [FieldSpec; 4] = [
    spec("schemaUrl", "schema_url", field::ENTITY_SCHEMA_URL, Kind::String),
    spec("type", "type", field::ENTITY_TYPE, Kind::String),
    spec("idKeys", "id_keys", field::ENTITY_ID_KEYS, Kind::RepeatedString),
    spec("descriptionKeys", "description_keys", field::ENTITY_DESCRIPTION_KEYS, Kind::RepeatedString),
];

#[rustfmt::skip]
const SCOPE_LOGS: [FieldSpec; 3] = [
    spec("scope", "scope", container::SCOPE, Kind::Message(Msg::Scope)),
    spec("logRecords", "log_records", container::LOG_RECORDS, Kind::RepeatedMessage(Msg::LogRecord)),
    spec("schemaUrl", "schema_url", container::SCHEMA_URL, Kind::String),
];

#[rustfmt::skip]
const SCOPE: [FieldSpec; 4] = [
    spec("name", "name", common::SCOPE_NAME, Kind::String),
    spec("version", "version", common::SCOPE_VERSION, Kind::String),
    spec("attributes", "attributes", common::SCOPE_ATTRIBUTES, Kind::RepeatedMessage(Msg::KeyValue)),
    spec("droppedAttributesCount", "dropped_attributes_count", field::SCOPE_DROPPED_ATTRIBUTES_COUNT, Kind::Scalar(Scalar::Uint32)),
];

#[rustfmt::skip]
const LOG_RECORD: [FieldSpec; 11] = [
    spec("timeUnixNano", "time_unix_nano", log_record::TIME_UNIX_NANO, Kind::Scalar(Scalar::Fixed64)),
    spec("observedTimeUnixNano", "observed_time_unix_nano", log_record::OBSERVED_TIME_UNIX_NANO, Kind::Scalar(Scalar::Fixed64)),
    spec("severityNumber", "severity_number", log_record::SEVERITY_NUMBER, Kind::Scalar(Scalar::Severity)),
    spec("severityText", "severity_text", log_record::SEVERITY_TEXT, Kind::String),
    spec("body", "body", log_record::BODY, Kind::Message(Msg::AnyValue)),
    spec("attributes", "attributes", log_record::ATTRIBUTES, Kind::RepeatedMessage(Msg::KeyValue)),
    spec("droppedAttributesCount", "dropped_attributes_count", log_record::DROPPED_ATTRIBUTES_COUNT, Kind::Scalar(Scalar::Uint32)),
    spec("flags", "flags", log_record::FLAGS, Kind::Scalar(Scalar::Fixed32)),
    spec("traceId", "trace_id", log_record::TRACE_ID, Kind::HexId(16)),
    spec("spanId", "span_id", log_record::SPAN_ID, Kind::HexId(8)),
    spec("eventName", "event_name", log_record::EVENT_NAME, Kind::String),
];

#[rustfmt::skip]
const KEY_VALUE: [FieldSpec; 3] = [
    spec("key", "key", common::KEY, Kind::String),
    spec("value", "value", common::VALUE, Kind::Message(Msg::AnyValue)),
    spec("keyStrindex", "key_strindex", field::KEY_STRINDEX, Kind::Scalar(Scalar::Int32)),
];

/// The members of the `value` oneof.
#[rustfmt::skip]
const ANY_VALUE: [FieldSpec; 8] = [
    oneof("stringValue", "string_value", common::STRING_VALUE, Kind::String),
    oneof("boolValue", "bool_value", common::BOOL_VALUE, Kind::Scalar(Scalar::Bool)),
    oneof("intValue", "int_value", common::INT_VALUE, Kind::Scalar(Scalar::Int64)),
    oneof("doubleValue", "double_value", common::DOUBLE_VALUE, Kind::Scalar(Scalar::Double)),
    oneof("arrayValue", "array_value", common::ARRAY_VALUE, Kind::Message(Msg::ArrayValue)),
    oneof("kvlistValue", "kvlist_value", common::KVLIST_VALUE, Kind::Message(Msg::KeyValueList)),
    oneof("bytesValue", "bytes_value", common::BYTES_VALUE, Kind::Base64),
    oneof("stringValueStrindex", "string_value_strindex", common::STRING_VALUE_STRINDEX, Kind::Scalar(Scalar::Int32)),
];

#[rustfmt::skip]
const ARRAY_VALUE: [FieldSpec; 1] = [
    spec("values", "values", common::VALUES, Kind::RepeatedMessage(Msg::AnyValue)),
];

#[rustfmt::skip]
const KEY_VALUE_LIST: [FieldSpec; 1] = [
    spec("values", "values", common::VALUES, Kind::RepeatedMessage(Msg::KeyValue)),
];

// Each message's fields fit in `Segments` and in the `seen` bit set.
const _: () = {
    let sizes = [
        REQUEST.len(),
        RESOURCE_LOGS.len(),
        RESOURCE.len(),
        ENTITY_REF.len(),
        SCOPE_LOGS.len(),
        SCOPE.len(),
        LOG_RECORD.len(),
        KEY_VALUE.len(),
        ANY_VALUE.len(),
        ARRAY_VALUE.len(),
        KEY_VALUE_LIST.len(),
    ];
    let mut i = 0;
    while i < sizes.len() {
        assert!(sizes[i] <= MAX_FIELDS && MAX_FIELDS <= 32);
        i += 1;
    }
};

impl Msg {
    fn fields(self) -> &'static [FieldSpec] {
        match self {
            Msg::Request => &REQUEST,
            Msg::ResourceLogs => &RESOURCE_LOGS,
            Msg::Resource => &RESOURCE,
            Msg::EntityRef => &ENTITY_REF,
            Msg::ScopeLogs => &SCOPE_LOGS,
            Msg::Scope => &SCOPE,
            Msg::LogRecord => &LOG_RECORD,
            Msg::KeyValue => &KEY_VALUE,
            Msg::AnyValue => &ANY_VALUE,
            Msg::ArrayValue => &ARRAY_VALUE,
            Msg::KeyValueList => &KEY_VALUE_LIST,
        }
    }

    /// The message's name in the OTLP protos.
    fn name(self) -> &'static str {
        match self {
            Msg::Request => "ExportLogsServiceRequest",
            Msg::ResourceLogs => "ResourceLogs",
            Msg::Resource => "Resource",
            Msg::EntityRef => "EntityRef",
            Msg::ScopeLogs => "ScopeLogs",
            Msg::Scope => "InstrumentationScope",
            Msg::LogRecord => "LogRecord",
            Msg::KeyValue => "KeyValue",
            Msg::AnyValue => "AnyValue",
            Msg::ArrayValue => "ArrayValue",
            Msg::KeyValueList => "KeyValueList",
        }
    }

    /// What is expected, for error messages: "a LogRecord object".
    fn expected(self) -> String {
        let name = self.name();
        let article = if name.starts_with(['A', 'E', 'I']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {name} object")
    }
}

/// How a value the visitor did not expect is named in error messages.
enum Found<'a> {
    Null,
    Bool(bool),
    Number(String),
    Str(&'a str),
    Array,
    Object,
}

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Null => f.write_str("null"),
            Found::Bool(b) => write!(f, "{b}"),
            Found::Number(n) => f.write_str(n),
            Found::Str(s) => write!(f, "{}", quoted(s)),
            Found::Array => f.write_str("an array"),
            Found::Object => f.write_str("an object"),
        }
    }
}

/// `s` as a JSON string, cut after 64 characters.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", serde_json::Value::from(&s[..cut])),
        None => serde_json::Value::from(s).to_string(),
    }
}

/// How the raw text of a scalar value is named in error messages.
fn found_raw(raw: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'{') => "an object".to_owned(),
        Some(b'[') => "an array".to_owned(),
        Some(b'"') => match serde_json::from_str::<String>(raw) {
            Ok(s) => quoted(&s),
            Err(_) => shortened(raw),
        },
        _ => shortened(raw),
    }
}

/// `s`, cut after 64 characters.
fn shortened(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Implements the `visit_*` methods for JSON values a visitor refuses, by
/// calling its `refuse(Found)`.
macro_rules! refuse {
    (bool) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(self.refuse(Found::Bool(v)))
        }
    };
    (numbers) => {
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(self.refuse(Found::Number(v.to_string())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(self.refuse(Found::Number(v.to_string())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(self.refuse(Found::Number(format!("{v:?}"))))
        }
    };
    (str) => {
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(self.refuse(Found::Str(v)))
        }
    };
    (seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.refuse(Found::Array))
        }
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.refuse(Found::Object))
        }
    };
    ($($kind:tt),+) => { $(refuse!($kind);)+ };
}

/// Reads a JSON object as the message `msg` and appends it, as field
/// `number` of its parent (or bare, for the request).
struct MessageSeed<'c, 'o> {
    cx: &'c mut Decoder<'o>,
    msg: Msg,
    number: Option<u32>,
    /// Whether `null` (= absent) is allowed: for a field, not for an item.
    nullable: bool,
    /// How many `AnyValue`s enclose this message, itself included.
    depth: usize,
}

impl<'c, 'o> MessageSeed<'c, 'o> {
    fn child(cx: &'c mut Decoder<'o>, msg: Msg, number: u32, nullable: bool, depth: usize) -> Self {
        let depth = if msg == Msg::AnyValue {
            depth + 1
        } else {
            depth
        };
        Self {
            cx,
            msg,
            number: Some(number),
            nullable,
            depth,
        }
    }

    fn refuse<E: de::Error>(self, found: Found<'_>) -> E {
        let reason = format!("expected {}, found {found}", self.msg.expected());
        self.cx.fail(reason)
    }
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            Ok(())
        } else {
            Err(self.refuse(Found::Null))
        }
    }

    refuse!(bool, numbers, str, seq);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let cx = self.cx;
        if self.msg == Msg::AnyValue && self.depth > MAX_ANY_VALUE_DEPTH {
            return Err(cx.fail(too_deep()));
        }
        let start = match self.number {
            Some(number) => begin_bytes(cx.out, number),
            None => cx.out.len(),
        };
        let fields = self.msg.fields();
        let mut seen = 0u32;
        let mut segments = Segments::new();
        // Made only when an unknown key comes (even an empty set costs a
        // seed from a thread-local per object).
        let mut unknown: Option<HashSet<String>> = None;
        let mut oneof_set: Option<&'static str> = None;
        while let Some(key) = map.next_key_seed(KeySeed(fields))? {
            let (index, key) = match key {
                Key::Known { index, key } => (index, key),
                Key::Unknown(key) => {
                    let unknown = unknown.get_or_insert_with(HashSet::new);
                    if unknown.contains(&key) {
                        return Err(cx.fail(format!("duplicate key {}", quoted(&key))));
                    }
                    map.next_value::<IgnoredAny>()?;
                    unknown.insert(key);
                    continue;
                }
            };
            if seen & (1 << index) != 0 {
                return Err(cx.fail(format!("duplicate key {}", quoted(key))));
            }
            seen |= 1 << index;
            let spec = &fields[index];
            cx.path.push(Segment::Field(spec.name));
            let field_start = cx.out.len();
            segments.push(spec.number, field_start);
            map.next_value_seed(FieldSeed {
                cx: &mut *cx,
                spec,
                depth: self.depth,
            })?;
            if spec.oneof && cx.out.len() > field_start {
                if let Some(other) = oneof_set {
                    return Err(cx.fail(format!(
                        "an AnyValue holds one value, found both {other} and {}",
                        spec.name
                    )));
                }
                oneof_set = Some(spec.name);
            }
            cx.path.pop();
        }
        if self.number.is_some() {
            cx.finish(start, &segments);
        }
        Ok(())
    }
}

/// A key of a message: a known field (by either of its names) or not.
enum Key {
    Known { index: usize, key: &'static str },
    Unknown(String),
}

struct KeySeed(&'static [FieldSpec]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        for (index, spec) in self.0.iter().enumerate() {
            if v == spec.name {
                return Ok(Key::Known {
                    index,
                    key: spec.name,
                });
            }
            if v == spec.proto_name {
                return Ok(Key::Known {
                    index,
                    key: spec.proto_name,
                });
            }
        }
        Ok(Key::Unknown(v.to_owned()))
    }
}

/// Reads the value of one known field.
struct FieldSeed<'c, 'o> {
    cx: &'c mut Decoder<'o>,
    spec: &'static FieldSpec,
    /// The depth of the message holding the field.
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let FieldSeed { cx, spec, depth } = self;
        match spec.kind {
            Kind::Message(msg) => {
                MessageSeed::child(cx, msg, spec.number, true, depth).deserialize(deserializer)
            }
            Kind::RepeatedMessage(_) | Kind::RepeatedString => {
                deserializer.deserialize_any(RepeatedSeed { cx, spec, depth })
            }
            Kind::String => deserializer.deserialize_any(TextSeed {
                cx,
                number: spec.number,
                text: Text::Utf8,
                always: spec.oneof,
                nullable: true,
            }),
            Kind::HexId(len) => deserializer.deserialize_any(TextSeed {
                cx,
                number: spec.number,
                text: Text::HexId(len),
                always: false,
                nullable: true,
            }),
            Kind::Base64 => deserializer.deserialize_any(TextSeed {
                cx,
                number: spec.number,
                text: Text::Base64,
                always: spec.oneof,
                nullable: true,
            }),
            Kind::Scalar(scalar) => {
                let raw = <&RawValue>::deserialize(deserializer)?;
                write_scalar(cx.out, spec.number, scalar, spec.oneof, raw.get())
                    .map_err(|reason| cx.fail(reason))
            }
        }
    }
}

/// Reads a JSON array as a repeated field.
struct RepeatedSeed<'c, 'o> {
    cx: &'c mut Decoder<'o>,
    spec: &'static FieldSpec,
    depth: usize,
}

impl RepeatedSeed<'_, '_> {
    fn refuse<E: de::Error>(self, found: Found<'_>) -> E {
        let reason = match self.spec.kind {
            Kind::RepeatedMessage(msg) => {
                format!("expected an array of {} objects, found {found}", msg.name())
            }
            _ => format!("expected an array of strings, found {found}"),
        };
        self.cx.fail(reason)
    }
}

impl<'de> Visitor<'de> for RepeatedSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    refuse!(bool, numbers, str, map);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let RepeatedSeed { cx, spec, depth } = self;
        for index in 0.. {
            cx.path.push(Segment::Index(index));
            let item = match spec.kind {
                Kind::RepeatedMessage(msg) => seq.next_element_seed(MessageSeed::child(
                    &mut *cx,
                    msg,
                    spec.number,
                    false,
                    depth,
                ))?,
                _ => seq.next_element_seed(TextSeed {
                    cx: &mut *cx,
                    number: spec.number,
                    text: Text::Utf8,
                    always: true,
                    nullable: false,
                })?,
            };
            cx.path.pop();
            if item.is_none() {
                break;
            }
        }
        Ok(())
    }
}

/// What a JSON string stands for.
#[derive(Clone, Copy)]
enum Text {
    Utf8,
    /// Hex digits for this many bytes, or empty (= absent).
    HexId(usize),
    /// Standard or URL-safe base64, padded or not.
    Base64,
}

/// Reads a JSON string into a length-delimited field.
struct TextSeed<'c, 'o> {
    cx: &'c mut Decoder<'o>,
    number: u32,
    text: Text,
    /// Written even when empty (a oneof member, an item of a repeated field).
    always: bool,
    nullable: bool,
}

impl TextSeed<'_, '_> {
    fn refuse<E: de::Error>(self, found: Found<'_>) -> E {
        let reason = match self.text {
            Text::Utf8 => format!("expected a string, found {found}"),
            Text::HexId(len) => {
                format!("expected a string of {} hex digits, found {found}", 2 * len)
            }
            Text::Base64 => format!("expected a base64 string, found {found}"),
        };
        self.cx.fail(reason)
    }

    fn write<E: de::Error>(self, s: &str) -> Result<(), E> {
        let out = &mut *self.cx.out;
        match self.text {
            Text::Utf8 => {
                if self.always || !s.is_empty() {
                    put_bytes(out, self.number, s.as_bytes());
                }
                Ok(())
            }
            Text::HexId(_) if s.is_empty() => Ok(()),
            Text::HexId(len) => {
                if s.len() != 2 * len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    let what = if len == 16 {
                        "a 16-byte trace id"
                    } else {
                        "an 8-byte span id"
                    };
                    let reason = format!(
                        "expected {} hex digits ({what}) or an empty string, found {}",
                        2 * len,
                        quoted(s)
                    );
                    return Err(self.cx.fail(reason));
                }
                put_key(out, self.number, 2);
                put_varint(out, len as u64);
                out.extend(
                    s.as_bytes()
                        .chunks_exact(2)
                        .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1])),
                );
                Ok(())
            }
            Text::Base64 => match write_base64(out, self.number, s, self.always) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let reason = format!("expected base64, found {} ({e})", quoted(s));
                    Err(self.cx.fail(reason))
                }
            },
        }
    }
}

fn nibble(hex: u8) -> u8 {
    match hex {
        b'0'..=b'9' => hex - b'0',
        b'a'..=b'f' => hex - b'a' + 10,
        _ => hex - b'A' + 10,
    }
}

/// Appends the bytes that `s`, in standard or URL-safe base64 with or
/// without padding, encodes, as field `number` (not when empty unless
/// `always`).
fn write_base64(
    out: &mut Vec<u8>,
    number: u32,
    s: &str,
    always: bool,
) -> Result<(), base64::DecodeError> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    if s.is_empty() {
        if always {
            put_bytes(out, number, &[]);
        }
        return Ok(());
    }
    let engine = if s.bytes().any(|b| b == b'-' || b == b'_') {
        &URL_SAFE
    } else {
        &STANDARD
    };
    // The decoded length, from the text: 3 bytes per 4 symbols, padding aside.
    let symbols = s.trim_end_matches('=').len();
    let len = symbols / 4 * 3 + (symbols % 4).saturating_sub(1);
    put_key(out, number, 2);
    put_varint(out, len as u64);
    let before = out.len();
    engine.decode_vec(s, out)?;
    // decode_vec has refused anything whose decoded length differs (a lone
    // trailing symbol, misplaced padding); keep the output well-formed anyway.
    if out.len() - before != len {
        return Err(base64::DecodeError::InvalidLength(s.len()));
    }
    Ok(())
}

impl<'de> DeserializeSeed<'de> for TextSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.write(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            Ok(())
        } else {
            Err(self.refuse(Found::Null))
        }
    }

    refuse!(bool, numbers, seq, map);
}

/// Appends field `number` whose JSON value is `raw` (its text as written: a
/// number, a string, `true`, `null`, ...); not when it is the default value
/// unless `always`.
fn write_scalar(
    out: &mut Vec<u8>,
    number: u32,
    scalar: Scalar,
    always: bool,
    raw: &str,
) -> Result<(), String> {
    if raw == "null" {
        return Ok(());
    }
    match scalar {
        Scalar::Bool => {
            let value = match raw {
                "true" => true,
                "false" => false,
                _ => return Err(format!("expected true or false, found {}", found_raw(raw))),
            };
            if always || value {
                put_key(out, number, 0);
                put_varint(out, u64::from(value));
            }
        }
        Scalar::Double => {
            let value = read_double(raw)?;
            if always || value != 0.0 {
                put_fixed64(out, number, value.to_bits());
            }
        }
        Scalar::Severity if raw.starts_with('"') => {
            let name = unquote(raw).ok_or_else(|| expected_severity(raw))?;
            let value =
                SeverityNumber::from_str_name(&name).ok_or_else(|| expected_severity(raw))?;
            put_int32(out, number, value as i32, always);
        }
        Scalar::Fixed64 => {
            let value = read_integer(raw, IntType::U64)?;
            if always || value != 0 {
                put_fixed64(out, number, value as u64);
            }
        }
        Scalar::Int64 => {
            let value = read_integer(raw, IntType::I64)?;
            if always || value != 0 {
                put_key(out, number, 0);
                put_varint(out, value as i64 as u64);
            }
        }
        Scalar::Fixed32 => {
            let value = read_integer(raw, IntType::U32)?;
            if always || value != 0 {
                put_fixed32(out, number, value as u32);
            }
        }
        Scalar::Uint32 => {
            let value = read_integer(raw, IntType::U32)?;
            if always || value != 0 {
                put_key(out, number, 0);
                put_varint(out, value as u64);
            }
        }
        Scalar::Int32 | Scalar::Severity => {
            let value = read_integer(raw, IntType::I32)?;
            put_int32(out, number, value as i32, always);
        }
    }
    Ok(())
}

fn put_int32(out: &mut Vec<u8>, number: u32, value: i32, always: bool) {
    if always || value != 0 {
        put_key(out, number, 0);
        // int32 and enums are sign-extended to 64 bits on the wire.
        put_varint(out, i64::from(value) as u64);
    }
}

fn expected_severity(raw: &str) -> String {
    format!(
        "expected a severity number or name (SEVERITY_NUMBER_UNSPECIFIED … SEVERITY_NUMBER_FATAL4), found {}",
        found_raw(raw)
    )
}

/// The content of the JSON string `raw` (which starts with a quote).
fn unquote(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        // Escapes in a number or a name: rare enough to decode again.
        serde_json::from_str::<String>(raw).ok().map(Into::into)
    } else {
        Some(inner.into())
    }
}

/// The integer types of OTLP, by range.
#[derive(Clone, Copy)]
enum IntType {
    U64,
    I64,
    U32,
    I32,
}

impl IntType {
    fn range(self) -> (i128, i128) {
        match self {
            IntType::U64 => (0, u64::MAX.into()),
            IntType::I64 => (i64::MIN.into(), i64::MAX.into()),
            IntType::U32 => (0, u32::MAX.into()),
            IntType::I32 => (i32::MIN.into(), i32::MAX.into()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            IntType::U64 => "an unsigned 64-bit integer",
            IntType::I64 => "a 64-bit integer",
            IntType::U32 => "an unsigned 32-bit integer",
            IntType::I32 => "a 32-bit integer",
        }
    }
}

/// Reads an integer given as a JSON number or a string holding one.
fn read_integer(raw: &str, ty: IntType) -> Result<i128, String> {
    let expected = || {
        format!(
            "expected an integer (number or string), found {}",
            found_raw(raw)
        )
    };
    let text = if raw.starts_with('"') {
        unquote(raw).ok_or_else(expected)?
    } else {
        raw.into()
    };
    let value = match parse_integer(&text) {
        Ok(value) => value,
        Err(IntError::Syntax) => return Err(expected()),
        Err(IntError::NotIntegral) => {
            return Err(format!(
                "expected an integer, found {} (it has a fractional part)",
                found_raw(raw)
            ));
        }
        Err(IntError::TooLarge) => i128::MAX,
    };
    let (min, max) = ty.range();
    if value < min || value > max {
        return Err(format!(
            "{} is out of range for {} ({min} to {max})",
            found_raw(raw),
            ty.name()
        ));
    }
    Ok(value)
}

/// Reads a double given as a JSON number, a string holding one, or one of
/// the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn read_double(raw: &str) -> Result<f64, String> {
    let expected = || {
        format!(
            "expected a number (or a string holding one, \"NaN\", \"Infinity\" or \"-Infinity\"), found {}",
            found_raw(raw)
        )
    };
    let text = if raw.starts_with('"') {
        unquote(raw).ok_or_else(expected)?
    } else {
        raw.into()
    };
    match &*text {
        "NaN" => return Ok(f64::NAN),
        "Infinity" => return Ok(f64::INFINITY),
        "-Infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    parse_double(&text).ok_or_else(|| {
        if parse_integer(&text) != Err(IntError::Syntax) {
            format!("{} is out of range for a double", found_raw(raw))
        } else {
            expected()
        }
    })
}
