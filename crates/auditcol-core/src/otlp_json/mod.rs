//! OTLP/JSON ⇄ OTLP/protobuf for `ExportLogsServiceRequest`, without
//! building the request in between.
//!
//! The collector keeps log records as protobuf bytes and reads them in place
//! ([`auditcol_model::view`]); this module is its OTLP/JSON edge:
//!
//! - [`json_to_protobuf`] parses the JSON once, with a streaming
//!   `serde_json` deserializer whose visitors write protobuf wire bytes as
//!   they go: no `serde_json::Value`, no generated structs. The output is the
//!   canonical encoding, byte for byte what `prost` writes for the same
//!   request. It accepts the whole proto3 JSON mapping as the [OTLP/JSON
//!   specification] uses it — lowerCamelCase and original snake_case field
//!   names, hex trace and span ids, integers as numbers or strings (exponent
//!   forms included when integral), enum names, `"NaN"` and `±"Infinity"`,
//!   standard and URL-safe base64 with or without padding, `null` as absent —
//!   and ignores unknown fields, as receivers must.
//! - [`protobuf_to_json`] reads the request with the wire reader and writes
//!   JSON straight from it, byte-identical to `serde_json` over
//!   `opentelemetry-proto`'s generated types (every field, defaults
//!   included, 64-bit times and `intValue` as strings), except that NaN and
//!   infinite doubles are written as `"NaN"`, `"Infinity"` and `"-Infinity"`
//!   (the proto3 mapping) where serde writes `null`.
//!
//! Both directions bound `AnyValue` nesting by
//! [`MAX_ANY_VALUE_DEPTH`](auditcol_model::view::MAX_ANY_VALUE_DEPTH), as the
//! protobuf check at ingest does, so the two encodings accept the same
//! requests and the stack stays bounded whatever the input.
//!
//! ```
//! use auditcol_core::otlp_json::{json_to_protobuf, protobuf_to_json};
//! let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
//!     {"timeUnixNano":"1714557600000000000","severityNumber":"SEVERITY_NUMBER_INFO",
//!      "body":{"stringValue":"hello"}}]}]}]}"#;
//! let mut protobuf = Vec::new();
//! json_to_protobuf(json, &mut protobuf).unwrap();
//! let mut back = Vec::new();
//! protobuf_to_json(&protobuf, &mut back).unwrap();
//! let back = String::from_utf8(back).unwrap();
//! assert!(back.contains(r#""severityNumber":9"#), "{back}");
//!
//! let err = json_to_protobuf(br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
//!     {"traceId":"abc"}]}]}]}"#, &mut protobuf).unwrap_err();
//! assert_eq!(err.path, "resourceLogs[0].scopeLogs[0].logRecords[0].traceId");
//! ```
//!
//! [OTLP/JSON specification]: https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding

use std::fmt;

mod decode;
mod encode;
mod number;

#[cfg(test)]
mod tests;

/// Parses an OTLP/JSON `ExportLogsServiceRequest` and appends the protobuf
/// encoding of the same request to `out`.
///
/// The encoding is canonical (fields in field-number order, defaults left
/// out), whatever the order of the keys in the JSON. On error `out` is left
/// as it was.
pub fn json_to_protobuf(json: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    decode::json_to_protobuf(json, out)
}

/// Appends the OTLP/JSON form of the protobuf-encoded
/// `ExportLogsServiceRequest` `request` to `out`.
///
/// Protobuf semantics hold for non-canonical input: the last occurrence of
/// a scalar field wins, occurrences of an embedded message merge. Malformed
/// protobuf (or invalid UTF-8 in a string, or `AnyValue`s nested too deep) is
/// an error naming the field; `out` is then left as it was.
pub fn protobuf_to_json(request: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    encode::protobuf_to_json(request, out)
}

/// Why a request could not be converted: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Where, in OTLP/JSON field names, e.g.
    /// `resourceLogs[0].scopeLogs[0].logRecords[3].traceId`; empty for the
    /// request itself (or a syntax error outside it).
    pub path: String,
    /// What is wrong, for a person.
    pub reason: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for JsonError {}

/// Field numbers not named in [`auditcol_model::view`], and some that are.
mod field {
    pub use auditcol_model::view::common::{
        KEY_STRINDEX, RESOURCE_DROPPED_ATTRIBUTES_COUNT, SCOPE_DROPPED_ATTRIBUTES_COUNT,
    };
    /// `Resource.entity_refs`.
    pub const RESOURCE_ENTITY_REFS: u32 = 3;
    /// `EntityRef.schema_url`.
    pub const ENTITY_SCHEMA_URL: u32 = 1;
    /// `EntityRef.type`.
    pub const ENTITY_TYPE: u32 = 2;
    /// `EntityRef.id_keys`.
    pub const ENTITY_ID_KEYS: u32 = 3;
    /// `EntityRef.description_keys`.
    pub const ENTITY_DESCRIPTION_KEYS: u32 = 4;
}

/// The reason given for `AnyValue`s nested too deep, in both directions.
fn too_deep() -> String {
    format!(
        "values nest more than {} levels deep",
        auditcol_model::view::MAX_ANY_VALUE_DEPTH
    )
}
