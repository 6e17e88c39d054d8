//! [`LogBatch`]: the unit of data flowing through a pipeline.
//!
//! A batch owns OTLP `ResourceLogs`. Components reach records only through
//! this API (count, iterate, read audit fields, retain, split, merge,
//! encode), so the representation can change (zero-copy, say) without
//! touching a component.

use std::fmt;

use auditcol_model::conventions::{self, AUDIT_ACTION, AUDIT_ID, AUDIT_SOURCE, AUDIT_TYPE};
use auditcol_model::{AuditEvent, ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs};
use auditcol_model::{str_attribute, string_kv, validate_record};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// A batch of OTLP log records.
#[derive(Clone, Default, PartialEq)]
pub struct LogBatch {
    resource_logs: Vec<ResourceLogs>,
    len: usize,
}

/// A request body that is not valid OTLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// What is wrong and where, e.g. `resourceLogs[0].scopeLogs[0].logRecords[3].timeUnixNano: invalid type`.
    pub message: String,
}

/// A record that decoded but breaks the audit conventions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RecordError {
    /// Where the record is, in OTLP JSON field names: `resourceLogs[0].scopeLogs[1].logRecords[2]`.
    pub path: String,
    /// Why it is rejected.
    pub reason: String,
}

/// Read access to one record of a batch, with its resource and scope.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    resource: Option<&'a Resource>,
    scope: Option<&'a InstrumentationScope>,
    record: &'a LogRecord,
}

impl<'a> RecordRef<'a> {
    /// The noun (`audit.type`), if the record has one.
    pub fn audit_type(&self) -> Option<&'a str> {
        str_attribute(&self.record.attributes, AUDIT_TYPE)
    }

    /// The verb (`audit.action`), if the record has one.
    pub fn audit_action(&self) -> Option<&'a str> {
        str_attribute(&self.record.attributes, AUDIT_ACTION)
    }

    /// The noun and verb when this record is an audit event.
    pub fn audit_noun_verb(&self) -> Option<(&'a str, &'a str)> {
        // One pass over the attributes: this runs for every record in the filter.
        let (mut noun, mut verb) = (None, None);
        for kv in &self.record.attributes {
            let slot = match kv.key.as_str() {
                AUDIT_TYPE => &mut noun,
                AUDIT_ACTION => &mut verb,
                _ => continue,
            };
            if let Some(Value::StringValue(s)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                *slot = Some(s.as_str());
            }
            if noun.is_some() && verb.is_some() {
                break;
            }
        }
        Some((noun?, verb?))
    }

    /// The string value of record attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&'a str> {
        str_attribute(&self.record.attributes, key)
    }

    /// The string value of resource attribute `key`.
    pub fn resource_attribute(&self, key: &str) -> Option<&'a str> {
        self.resource
            .and_then(|r| str_attribute(&r.attributes, key))
    }

    /// The instrumentation scope name, empty when there is none.
    pub fn scope_name(&self) -> &'a str {
        self.scope.map_or("", |s| s.name.as_str())
    }

    /// `time_unix_nano` (0 = unknown).
    pub fn time_unix_nano(&self) -> u64 {
        self.record.time_unix_nano
    }

    /// `observed_time_unix_nano`.
    pub fn observed_time_unix_nano(&self) -> u64 {
        self.record.observed_time_unix_nano
    }

    /// The event time: `time_unix_nano`, or the observed time when unknown.
    pub fn event_time_unix_nano(&self) -> u64 {
        if self.record.time_unix_nano != 0 {
            self.record.time_unix_nano
        } else {
            self.record.observed_time_unix_nano
        }
    }

    /// The OTLP severity number.
    pub fn severity_number(&self) -> i32 {
        self.record.severity_number
    }

    /// The body as JSON (`null` when absent).
    pub fn body_json(&self) -> serde_json::Value {
        auditcol_model::anyvalue::value_to_json(
            self.record.body.as_ref().and_then(|b| b.value.as_ref()),
        )
    }

    /// The event name.
    pub fn event_name(&self) -> &'a str {
        &self.record.event_name
    }

    /// Appends the Flipt v0.2 JSON of the audit event this record carries to
    /// `out`, without building an [`AuditEvent`]; false (nothing written)
    /// when the record is not an audit event.
    pub fn write_audit_json(&self, out: &mut Vec<u8>) -> bool {
        auditcol_model::json::write_audit_event_json(self.record, out)
    }

    /// The audit event this record carries, or `None` if it is not one.
    pub fn to_audit_event(&self) -> Option<AuditEvent> {
        AuditEvent::from_log_record(self.record)
    }
}

impl LogBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch owning `resource_logs`.
    pub fn from_resource_logs(resource_logs: Vec<ResourceLogs>) -> Self {
        let len = count_records(&resource_logs);
        Self { resource_logs, len }
    }

    /// A batch owning the records of an OTLP export request.
    pub fn from_request(request: ExportLogsServiceRequest) -> Self {
        Self::from_resource_logs(request.resource_logs)
    }

    /// One resource with one scope holding a record per event; the resource
    /// carries `service.name` = `source` and every record `audit.source`.
    pub fn from_events<'e>(source: &str, events: impl IntoIterator<Item = &'e AuditEvent>) -> Self {
        let log_records: Vec<LogRecord> = events.into_iter().map(|e| e.to_log_record()).collect();
        let resource = Resource {
            attributes: vec![string_kv("service.name", source)],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "auditcol".to_owned(),
            ..Default::default()
        };
        let mut batch = Self::from_resource_logs(vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }]);
        for record in batch.records_mut() {
            if str_attribute(&record.attributes, AUDIT_SOURCE).is_none() {
                record.attributes.push(string_kv(AUDIT_SOURCE, source));
            }
        }
        batch
    }

    /// Decodes an OTLP/protobuf `ExportLogsServiceRequest`.
    pub fn decode_protobuf(bytes: &[u8]) -> Result<Self, DecodeError> {
        ExportLogsServiceRequest::decode(bytes)
            .map(Self::from_request)
            .map_err(|e| DecodeError {
                message: format!("invalid OTLP protobuf: {e}"),
            })
    }

    /// Decodes an OTLP/JSON `ExportLogsServiceRequest` (lowerCamelCase field
    /// names, hex trace and span ids, 64-bit integers as strings or numbers).
    ///
    /// Also accepts valid OTLP/JSON that the generated decoder rejects:
    /// `null` for any field (= absent), `{"kvlistValue":{}}` and
    /// `{"arrayValue":{}}` (= empty), and invalid trace or span ids, which
    /// the specification says to treat as absent.
    pub fn decode_json(bytes: &[u8]) -> Result<Self, DecodeError> {
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
        Ok(Self::from_request(request))
    }

    /// Number of log records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the records with their resource and scope.
    pub fn records(&self) -> impl Iterator<Item = RecordRef<'_>> {
        self.resource_logs.iter().flat_map(|rl| {
            rl.scope_logs.iter().flat_map(move |sl| {
                sl.log_records.iter().map(move |record| RecordRef {
                    resource: rl.resource.as_ref(),
                    scope: sl.scope.as_ref(),
                    record,
                })
            })
        })
    }

    fn records_mut(&mut self) -> impl Iterator<Item = &mut LogRecord> {
        self.resource_logs.iter_mut().flat_map(|rl| {
            rl.scope_logs
                .iter_mut()
                .flat_map(|sl| sl.log_records.iter_mut())
        })
    }

    /// Keeps the records for which `keep` returns true; scopes and resources
    /// left empty are removed.
    pub fn retain(&mut self, mut keep: impl FnMut(RecordRef<'_>) -> bool) {
        let mut len = 0;
        for rl in &mut self.resource_logs {
            let resource = rl.resource.as_ref();
            for sl in &mut rl.scope_logs {
                let scope = sl.scope.as_ref();
                sl.log_records.retain(|record| {
                    keep(RecordRef {
                        resource,
                        scope,
                        record,
                    })
                });
                len += sl.log_records.len();
            }
            rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        }
        self.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
        self.len = len;
    }

    /// Moves all records of `other` into this batch.
    pub fn merge(&mut self, mut other: LogBatch) {
        self.len += other.len;
        self.resource_logs.append(&mut other.resource_logs);
    }

    /// Removes the first `n` records (all if fewer) and returns them as a batch.
    /// Resources and scopes cut in two are copied into both halves.
    pub fn split_front(&mut self, n: usize) -> LogBatch {
        if n >= self.len {
            return std::mem::take(self);
        }
        let mut taken = Vec::new();
        let mut remaining = n;
        let mut whole = 0;
        for rl in &self.resource_logs {
            let count = rl
                .scope_logs
                .iter()
                .map(|sl| sl.log_records.len())
                .sum::<usize>();
            if count > remaining {
                break;
            }
            remaining -= count;
            whole += 1;
        }
        taken.extend(self.resource_logs.drain(..whole));
        if remaining > 0 {
            let rl = &mut self.resource_logs[0];
            let mut part = ResourceLogs {
                resource: rl.resource.clone(),
                scope_logs: Vec::new(),
                schema_url: rl.schema_url.clone(),
            };
            let mut whole_scopes = 0;
            for sl in &rl.scope_logs {
                if sl.log_records.len() > remaining {
                    break;
                }
                remaining -= sl.log_records.len();
                whole_scopes += 1;
            }
            part.scope_logs.extend(rl.scope_logs.drain(..whole_scopes));
            if remaining > 0 {
                let sl = &mut rl.scope_logs[0];
                part.scope_logs.push(ScopeLogs {
                    scope: sl.scope.clone(),
                    log_records: sl.log_records.drain(..remaining).collect(),
                    schema_url: sl.schema_url.clone(),
                });
            }
            taken.push(part);
        }
        self.len -= n;
        LogBatch {
            resource_logs: taken,
            len: n,
        }
    }

    /// Splits into batches of at most `max` records (`max` = 0: no limit).
    pub fn split(mut self, max: usize) -> Vec<LogBatch> {
        if max == 0 || self.len <= max {
            return vec![self];
        }
        let mut parts = Vec::with_capacity(self.len.div_ceil(max));
        while !self.is_empty() {
            parts.push(self.split_front(max));
        }
        parts
    }

    /// Checks every record against the audit conventions; the error names
    /// the first bad record and why.
    pub fn validate(&self) -> Result<(), RecordError> {
        for (r, rl) in self.resource_logs.iter().enumerate() {
            for (s, sl) in rl.scope_logs.iter().enumerate() {
                for (i, record) in sl.log_records.iter().enumerate() {
                    validate_record(record).map_err(|e| RecordError {
                        path: format!("resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"),
                        reason: e.to_string(),
                    })?;
                }
            }
        }
        Ok(())
    }

    /// What a receiver does to every record it accepts: sets
    /// `observed_time_unix_nano` where absent, and on audit events lower-cases
    /// `audit.type`/`audit.action`, sets `event_name` where absent, assigns
    /// `audit.id` (UUIDv7) and `audit.source` = `source` where absent.
    pub fn prepare_ingest(&mut self, observed_time_unix_nano: u64, source: &str) {
        for record in self.records_mut() {
            if record.observed_time_unix_nano == 0 {
                record.observed_time_unix_nano = observed_time_unix_nano;
            }
            let (mut has_id, mut has_source, mut noun, mut verb) = (false, false, None, None);
            for (i, kv) in record.attributes.iter_mut().enumerate() {
                match kv.key.as_str() {
                    AUDIT_ID => has_id = true,
                    AUDIT_SOURCE => has_source = true,
                    AUDIT_TYPE | AUDIT_ACTION => {
                        if let Some(Value::StringValue(s)) =
                            kv.value.as_mut().and_then(|v| v.value.as_mut())
                        {
                            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                                s.make_ascii_lowercase();
                            }
                            if kv.key == AUDIT_TYPE {
                                noun = Some(i);
                            } else {
                                verb = Some(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
            let (Some(noun), Some(verb)) = (noun, verb) else {
                continue;
            };
            if record.event_name.is_empty() {
                let name_of = |i: usize| match record.attributes[i]
                    .value
                    .as_ref()
                    .and_then(|v| v.value.as_ref())
                {
                    Some(Value::StringValue(s)) => s.as_str(),
                    _ => "",
                };
                record.event_name = conventions::event_name(name_of(noun), name_of(verb));
            }
            if !has_id {
                record
                    .attributes
                    .push(string_kv(AUDIT_ID, conventions::new_event_id()));
            }
            if !has_source {
                record.attributes.push(string_kv(AUDIT_SOURCE, source));
            }
        }
    }

    /// Encodes as an OTLP/protobuf `ExportLogsServiceRequest`.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        // Field 1 of ExportLogsServiceRequest, once per ResourceLogs: the
        // same bytes as encoding a request, without cloning the records into one.
        let mut out = Vec::with_capacity(self.encoded_len());
        for rl in &self.resource_logs {
            prost::encoding::message::encode(1, rl, &mut out);
        }
        out
    }

    /// Size in bytes of the protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        self.resource_logs
            .iter()
            .map(|rl| {
                let n = rl.encoded_len();
                // tag + length prefix + message
                1 + prost::length_delimiter_len(n) + n
            })
            .sum()
    }

    /// Appends the OTLP/JSON `ExportLogsServiceRequest` of this batch to `out`.
    pub fn write_otlp_json(&self, out: &mut Vec<u8>) {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Request<'a> {
            resource_logs: &'a [ResourceLogs],
        }
        serde_json::to_writer(
            out,
            &Request {
                resource_logs: &self.resource_logs,
            },
        )
        .expect("serialising OTLP types into memory cannot fail");
    }

    /// The batch as an OTLP export request.
    pub fn into_request(self) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: self.resource_logs,
        }
    }

    /// A batch of `n` audit events (`flag:created`, `segment:deleted`, ...
    /// in turn) for tests and benchmarks.
    #[doc(hidden)]
    pub fn sample_audit(n: usize) -> LogBatch {
        const KINDS: [(&str, &str); 4] = [
            ("flag", "created"),
            ("segment", "deleted"),
            ("flag", "updated"),
            ("variant", "created"),
        ];
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                let (noun, verb) = KINDS[i % KINDS.len()];
                let mut e = AuditEvent::new(noun, verb);
                e.metadata.actor.authentication = Some("none".into());
                e.metadata.actor.ip = Some("127.0.0.1".into());
                e.payload = serde_json::json!({"key": format!("flag-{i}"), "enabled": true});
                e.timestamp = 1_714_557_600_000_000_000 + i as u64;
                e
            })
            .collect();
        LogBatch::from_events("test", &events)
    }
}

impl fmt::Debug for LogBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogBatch")
            .field("records", &self.len)
            .field("resources", &self.resource_logs.len())
            .finish()
    }
}

fn count_records(resource_logs: &[ResourceLogs]) -> usize {
    resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
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

#[cfg(test)]
mod tests;
