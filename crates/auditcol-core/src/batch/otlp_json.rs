//! OTLP/JSON ⇄ [`LogBatch`].

use auditcol_model::ExportLogsServiceRequest;
use bytes::Bytes;
use prost::Message;

use super::{DecodeError, Decoded, LogBatch};

impl LogBatch {
    /// Decodes an OTLP/JSON `ExportLogsServiceRequest` (lowerCamelCase field
    /// names, hex trace and span ids, 64-bit integers as strings or numbers).
    ///
    /// Also accepts valid OTLP/JSON that the generated decoder rejects:
    /// `null` for any field (= absent), `{"kvlistValue":{}}` and
    /// `{"arrayValue":{}}` (= empty), and invalid trace or span ids, which
    /// the specification says to treat as absent.
    pub fn decode_json(bytes: &[u8]) -> Result<Decoded, DecodeError> {
        let mut value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| DecodeError {
                message: format!("invalid JSON: {e}"),
            })?;
        if !value.is_object() {
            return Err(DecodeError {
                message: "invalid OTLP JSON: the body must be an ExportLogsServiceRequest object"
                    .into(),
            });
        }
        normalize_otlp_json(&mut value);
        let request: ExportLogsServiceRequest =
            serde_path_to_error::deserialize(value).map_err(|e| DecodeError {
                message: format!("invalid OTLP JSON at {}: {}", e.path(), e.inner()),
            })?;
        Self::decode_protobuf(Bytes::from(request.encode_to_vec()))
    }

    /// Appends the OTLP/JSON `ExportLogsServiceRequest` of this batch to `out`.
    pub fn write_otlp_json(&self, out: &mut Vec<u8>) {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Request<'a> {
            resource_logs: &'a [auditcol_model::ResourceLogs],
        }
        let request = ExportLogsServiceRequest::decode(self.encode_protobuf().as_slice())
            .expect("a batch encodes to a valid request");
        serde_json::to_writer(
            out,
            &Request {
                resource_logs: &request.resource_logs,
            },
        )
        .expect("serialising OTLP types into memory cannot fail");
    }
}

/// Rewrites valid OTLP/JSON that the generated serde decoder rejects into an
/// equivalent form it accepts.
fn normalize_otlp_json(value: &mut serde_json::Value) {
    use serde_json::Value as J;
    match value {
        J::Object(map) => {
            map.retain(|_, v| !v.is_null());
            for key in ["kvlistValue", "arrayValue"] {
                if let Some(J::Object(inner)) = map.get_mut(key) {
                    inner
                        .entry("values")
                        .or_insert_with(|| J::Array(Vec::new()));
                }
            }
            for (key, len) in [("traceId", 32), ("spanId", 16)] {
                let valid = match map.get(key) {
                    Some(J::String(s)) => {
                        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
                    }
                    Some(_) => false,
                    None => true,
                };
                if !valid {
                    map.remove(key);
                }
            }
            for v in map.values_mut() {
                normalize_otlp_json(v);
            }
        }
        J::Array(items) => items.iter_mut().for_each(normalize_otlp_json),
        _ => {}
    }
}
