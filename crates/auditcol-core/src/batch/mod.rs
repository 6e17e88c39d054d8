//! [`LogBatch`]: the unit of data flowing through a pipeline.
//!
//! A batch holds OTLP log records as the protobuf bytes they arrived in —
//! slices of the receiver's request buffer, shared by reference count — and
//! reads them in place through [`auditcol_model::view`]. Nothing is decoded
//! into owned OTLP structs on the way through:
//!
//! - **Decode** ([`LogBatch::decode_protobuf`]) walks the request once: it
//!   checks every record (well-formed protobuf, UTF-8, nesting, the audit
//!   conventions) and notes where its noun and verb are. A record that fails
//!   is left out and reported in [`Decoded`]; every record in a `LogBatch`
//!   is valid.
//! - **Ingest** ([`LogBatch::prepare_ingest`]) appends a few fields to a
//!   record (`observed_time_unix_nano`, `event_name`, `audit.id`,
//!   `audit.source`) as a separate patch; protobuf's last-one-wins makes the
//!   record plus patch read as the updated record.
//! - **Share**: a batch is copy-on-write. Cloning it (a fan-out to several
//!   exporters) costs a reference count; the first change to a shared batch
//!   copies its index of records, never the record bytes.
//! - **Encode** ([`LogBatch::encode_protobuf`]) concatenates the bytes with
//!   new length prefixes.
//!
//! Components use only this API (count, iterate, read audit fields, retain,
//! split, merge, encode), so the representation stays free to change.

mod chunks;
mod edit;
mod events;
mod ingest;
mod otlp_json;
mod protobuf;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use auditcol_model::AuditEvent;
use auditcol_model::audit::AuditAttributes;
use auditcol_model::json::AuditFields;
use auditcol_model::view::{AnyValueView, Attributes, KeyValueView, RecordView, common, container};
use auditcol_model::wire::{WireValue, fields};
use bytes::Bytes;
use smallvec::SmallVec;

pub use chunks::Chunks;
pub use edit::RecordEdit;
pub use protobuf::Decoded;

/// A batch of OTLP log records.
#[derive(Clone, Default)]
pub struct LogBatch {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    resources: Vec<ResourceGroup>,
    len: usize,
}

/// The records of one `ResourceLogs`.
#[derive(Clone)]
struct ResourceGroup {
    /// The encoded fields of the `ResourceLogs` other than `scope_logs`
    /// (`resource`, `schema_url`).
    header: Bytes,
    scopes: Vec<ScopeGroup>,
}

/// The records of one `ScopeLogs`.
#[derive(Clone)]
struct ScopeGroup {
    /// The encoded fields of the `ScopeLogs` other than `log_records`
    /// (`scope`, `schema_url`).
    header: Bytes,
    records: Vec<Record>,
}

/// One `LogRecord`: its bytes, fields appended at ingest, and what the
/// check at decode learned about it.
#[derive(Clone)]
struct Record {
    body: Bytes,
    patch: Bytes,
    index: RecordIndex,
    /// Where the `audit.actor.*` attributes (encoded `KeyValue`s) are in
    /// `body`, so that writers need not walk the record again.
    actor: SmallVec<[Span; 2]>,
}

/// Where a string sits in a record's body.
#[derive(Clone, Copy, Default, Debug)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// Where `inner`, a sub-slice of `outer`, lies in it.
    fn of(inner: &[u8], outer: &[u8]) -> Self {
        let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
        Self {
            start: start as u32,
            len: inner.len() as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

#[derive(Clone, Copy, Default, Debug)]
struct RecordIndex {
    time: u64,
    observed: u64,
    noun: Span,
    verb: Span,
    /// `audit.version`, when `HAS_VERSION`.
    version: Span,
    /// `audit.status`, when `HAS_STATUS`.
    status: Span,
    /// The encoded body (`AnyValue`), when `HAS_BODY`.
    body: Span,
    flags: u8,
}

impl RecordIndex {
    const AUDIT: u8 = 1;
    const HAS_ID: u8 = 2;
    const HAS_SOURCE: u8 = 4;
    /// `event_name` is already `audit.<type>.<action>` (lower case).
    const EVENT_NAME_OK: u8 = 8;
    /// Noun or verb has upper-case letters.
    const UPPER: u8 = 16;
    const HAS_VERSION: u8 = 32;
    const HAS_STATUS: u8 = 64;
    const HAS_BODY: u8 = 128;

    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

impl Record {
    fn view(&self) -> RecordView<'_> {
        RecordView::new(&self.body, &self.patch)
    }

    fn text(&self, span: Span) -> &str {
        // Checked UTF-8 at decode; the span lies on character boundaries.
        auditcol_model::view::as_str(&self.body[span.range()]).unwrap_or_default()
    }

    fn noun_verb(&self) -> Option<(&str, &str)> {
        self.index
            .has(RecordIndex::AUDIT)
            .then(|| (self.text(self.index.noun), self.text(self.index.verb)))
    }

    /// What the writers of an audit event need, from the index made at
    /// decode: no walk over the record's fields.
    #[inline(always)]
    fn audit_fields(&self) -> Option<AuditFields<'_>> {
        let (audit, body, time) = self.audit_parts()?;
        Some(AuditFields::from_parts(audit, self.actor(), body, time))
    }

    /// The audit attributes, the body and the event time, from the index.
    #[inline(always)]
    fn audit_parts(&self) -> Option<(AuditAttributes<'_>, AnyValueView<'_>, u64)> {
        let index = self.index;
        let (noun, verb) = self.noun_verb()?;
        let mut audit = AuditAttributes::default();
        audit.noun = Some(noun);
        audit.verb = Some(verb);
        audit.version = index
            .has(RecordIndex::HAS_VERSION)
            .then(|| self.text(index.version));
        audit.status = index
            .has(RecordIndex::HAS_STATUS)
            .then(|| self.text(index.status));
        let body = if index.has(RecordIndex::HAS_BODY) {
            AnyValueView::parse(&self.body[index.body.range()])
        } else {
            AnyValueView::Empty
        };
        let time = if index.time != 0 {
            index.time
        } else {
            index.observed
        };
        Some((audit, body, time))
    }

    /// The `audit.actor.*` attributes, in record order.
    #[inline(always)]
    fn actor(&self) -> impl Iterator<Item = KeyValueView<'_>> {
        self.actor
            .iter()
            .map(|span| KeyValueView::parse(&self.body[span.range()]))
    }

    fn encoded_len(&self) -> usize {
        self.body.len() + self.patch.len()
    }
}

/// A record that was left out of a batch, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RecordError {
    /// Where it is, in OTLP JSON field names: `resourceLogs[0].scopeLogs[1].logRecords[2]`,
    /// followed by the field at fault when there is one (`.attributes[3].key`).
    pub path: String,
    /// Why it is rejected.
    pub reason: String,
}

/// A request body that is not valid OTLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// What is wrong and where, e.g. `invalid OTLP protobuf: resourceLogs[0]: truncated message`.
    pub message: String,
}

/// Read access to one record of a batch, with its resource and scope.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    resource: &'a ResourceGroup,
    scope: &'a ScopeGroup,
    record: &'a Record,
}

impl<'a> RecordRef<'a> {
    /// The noun (`audit.type`), if the record is an audit event.
    pub fn audit_type(&self) -> Option<&'a str> {
        self.audit_noun_verb().map(|(noun, _)| noun)
    }

    /// The verb (`audit.action`), if the record is an audit event.
    pub fn audit_action(&self) -> Option<&'a str> {
        self.audit_noun_verb().map(|(_, verb)| verb)
    }

    /// The noun and verb when this record is an audit event. Read from the
    /// index made at decode: no attribute scan.
    pub fn audit_noun_verb(&self) -> Option<(&'a str, &'a str)> {
        self.record.noun_verb()
    }

    /// The event id (`audit.id`), if any.
    pub fn audit_id(&self) -> Option<&'a str> {
        self.view().audit().id
    }

    /// The string value of record attribute `key` (the first, if repeated).
    pub fn attribute(&self, key: &str) -> Option<&'a str> {
        self.view().str_attribute(key)
    }

    /// The string value of resource attribute `key`.
    pub fn resource_attribute(&self, key: &str) -> Option<&'a str> {
        let resource = last_bytes(&self.resource.header, container::RESOURCE)?;
        Attributes::of_message(resource, common::RESOURCE_ATTRIBUTES)
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_str())
    }

    /// The instrumentation scope name, empty when there is none.
    pub fn scope_name(&self) -> &'a str {
        last_bytes(&self.scope.header, container::SCOPE)
            .and_then(|scope| last_bytes(scope, common::SCOPE_NAME))
            .and_then(|name| std::str::from_utf8(name).ok())
            .unwrap_or("")
    }

    /// `time_unix_nano` (0 = unknown).
    pub fn time_unix_nano(&self) -> u64 {
        self.record.index.time
    }

    /// `observed_time_unix_nano`.
    pub fn observed_time_unix_nano(&self) -> u64 {
        self.record.index.observed
    }

    /// The event time: `time_unix_nano`, or the observed time when unknown.
    pub fn event_time_unix_nano(&self) -> u64 {
        let index = self.record.index;
        if index.time != 0 {
            index.time
        } else {
            index.observed
        }
    }

    /// The OTLP severity number.
    pub fn severity_number(&self) -> i32 {
        self.view().severity_number()
    }

    /// The body, `None` when absent.
    pub fn body(&self) -> Option<AnyValueView<'a>> {
        self.view().body()
    }

    /// The body as JSON (`null` when absent).
    pub fn body_json(&self) -> serde_json::Value {
        self.body().map_or(
            serde_json::Value::Null,
            auditcol_model::anyvalue::view_to_json,
        )
    }

    /// The event name.
    pub fn event_name(&self) -> &'a str {
        self.view().event_name()
    }

    /// The record itself, for readers that need every field (console and
    /// JSON writers).
    pub fn view(&self) -> RecordView<'a> {
        self.record.view()
    }

    /// The parts of the audit event this record carries (audit attributes,
    /// actor, payload, event time), read from the index made at decode;
    /// `None` when it is not an audit event.
    #[inline]
    pub fn audit_fields(&self) -> Option<AuditFields<'a>> {
        self.record.audit_fields()
    }

    /// Appends the Flipt v0.2 JSON of the audit event this record carries to
    /// `out`, without building an [`AuditEvent`]; false (nothing written)
    /// when the record is not an audit event.
    pub fn write_audit_json(&self, out: &mut Vec<u8>) -> bool {
        let record = self.record;
        let Some((audit, body, time)) = record.audit_parts() else {
            return false;
        };
        AuditFields::write_json_from_parts(audit, record.actor(), body, time, out)
    }

    /// The audit event this record carries, or `None` if it is not one.
    /// Decodes the record: for tests and rare paths, not per record.
    pub fn to_audit_event(&self) -> Option<AuditEvent> {
        let mut bytes = Vec::with_capacity(self.record.encoded_len());
        bytes.extend_from_slice(&self.record.body);
        bytes.extend_from_slice(&self.record.patch);
        let record: auditcol_model::LogRecord = prost::Message::decode(bytes.as_slice()).ok()?;
        AuditEvent::from_log_record(&record)
    }
}

/// The payload of the last occurrence of length-delimited field `number`.
fn last_bytes(message: &[u8], number: u32) -> Option<&[u8]> {
    fields(message)
        .filter(|f| f.number == number)
        .last()
        .and_then(|f| match f.value {
            WireValue::Bytes(b) => Some(b),
            _ => None,
        })
}

impl LogBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn from_resources(resources: Vec<ResourceGroup>) -> Self {
        let len = resources
            .iter()
            .flat_map(|rg| &rg.scopes)
            .map(|sg| sg.records.len())
            .sum();
        Self {
            inner: Arc::new(Inner { resources, len }),
        }
    }

    /// The groups, for changing; copies the index (not the records' bytes)
    /// when the batch is shared.
    fn make_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Number of log records.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Iterates over the records with their resource and scope.
    pub fn records(&self) -> impl Iterator<Item = RecordRef<'_>> {
        self.inner.resources.iter().flat_map(|resource| {
            resource.scopes.iter().flat_map(move |scope| {
                scope.records.iter().map(move |record| RecordRef {
                    resource,
                    scope,
                    record,
                })
            })
        })
    }

    /// Keeps the records for which `keep` returns true; scopes and resources
    /// left empty are removed.
    pub fn retain(&mut self, mut keep: impl FnMut(RecordRef<'_>) -> bool) {
        // Decide first on the shared data: a batch that keeps everything is
        // not copied.
        let verdicts: Vec<bool> = self.records().map(&mut keep).collect();
        if verdicts.iter().all(|k| *k) {
            return;
        }
        let inner = self.make_mut();
        let mut verdict = verdicts.into_iter();
        let mut len = 0;
        for resource in &mut inner.resources {
            for scope in &mut resource.scopes {
                scope.records.retain(|_| verdict.next().unwrap_or(false));
                len += scope.records.len();
            }
            resource.scopes.retain(|s| !s.records.is_empty());
        }
        inner.resources.retain(|r| !r.scopes.is_empty());
        inner.len = len;
    }

    /// Keeps the records whose flag in `marked` is set, one flag per record
    /// in batch order (records beyond `marked` are dropped): what a sender
    /// that tracked records by their place needs to build "the records that
    /// remain".
    pub fn retain_marked(&mut self, marked: &[bool]) {
        let mut index = 0;
        self.retain(|_| {
            index += 1;
            marked.get(index - 1).copied().unwrap_or(false)
        });
    }

    /// The `audit.id`s of the records at `indices` (`-` for a record with
    /// none), comma-separated: for log lines about those records.
    pub fn audit_ids_at(&self, indices: &[usize]) -> String {
        let mut ids = Vec::with_capacity(indices.len());
        for (index, record) in self.records().enumerate() {
            if indices.contains(&index) {
                ids.push(record.audit_id().unwrap_or("-"));
            }
        }
        ids.join(",")
    }

    /// Moves all records of `other` into this batch.
    pub fn merge(&mut self, other: LogBatch) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = other;
            return;
        }
        let other = Arc::try_unwrap(other.inner).unwrap_or_else(|shared| (*shared).clone());
        let inner = self.make_mut();
        inner.len += other.len;
        inner.resources.extend(other.resources);
    }

    /// Removes the first `n` records (all if fewer) and returns them as a batch.
    /// Resources and scopes cut in two are in both halves.
    pub fn split_front(&mut self, n: usize) -> LogBatch {
        if n >= self.len() {
            return std::mem::take(self);
        }
        let inner = self.make_mut();
        let mut taken = Vec::new();
        let mut remaining = n;
        let whole = inner
            .resources
            .iter()
            .take_while(|rg| {
                let count: usize = rg.scopes.iter().map(|sg| sg.records.len()).sum();
                let fits = count <= remaining;
                if fits {
                    remaining -= count;
                }
                fits
            })
            .count();
        taken.extend(inner.resources.drain(..whole));
        if remaining > 0 {
            let resource = &mut inner.resources[0];
            let whole_scopes = resource
                .scopes
                .iter()
                .take_while(|sg| {
                    let fits = sg.records.len() <= remaining;
                    if fits {
                        remaining -= sg.records.len();
                    }
                    fits
                })
                .count();
            let mut part = ResourceGroup {
                header: resource.header.clone(),
                scopes: resource.scopes.drain(..whole_scopes).collect(),
            };
            if remaining > 0 {
                let scope = &mut resource.scopes[0];
                part.scopes.push(ScopeGroup {
                    header: scope.header.clone(),
                    records: scope.records.drain(..remaining).collect(),
                });
            }
            taken.push(part);
        }
        inner.len -= n;
        LogBatch {
            inner: Arc::new(Inner {
                resources: taken,
                len: n,
            }),
        }
    }

    /// Splits into batches of at most `max` records (`max` = 0: no limit).
    pub fn split(mut self, max: usize) -> Vec<LogBatch> {
        if max == 0 || self.len() <= max {
            return vec![self];
        }
        let mut parts = Vec::with_capacity(self.len().div_ceil(max));
        while !self.is_empty() {
            parts.push(self.split_front(max));
        }
        parts
    }

    /// A batch of `n` audit events (`flag:created`, `segment:deleted`, ...
    /// in turn), for tests and benchmarks.
    #[cfg(any(test, feature = "test-util"))]
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

    /// Two records with everything a record can carry: resource and scope with
    /// attributes, a map body, an event name, attributes of several types, a
    /// record that is not an audit event. All stamped already.
    #[cfg(any(test, feature = "test-util"))]
    pub fn sample_varied() -> LogBatch {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
        };
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let s = |v: &str| Value::StringValue(v.into());
        let record = |attributes: Vec<KeyValue>, event_name: &str| LogRecord {
            time_unix_nano: 1_714_557_600_000_000_001,
            observed_time_unix_nano: 1_714_557_600_000_000_002,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("key", s("flipt")), kv("n", Value::IntValue(3))],
                })),
            }),
            attributes,
            event_name: event_name.into(),
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("flipt")), kv("host.name", s("h1"))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "flipt.audit".into(),
                        version: "1.2.3".into(),
                        attributes: vec![kv("lib", s("x"))],
                        ..Default::default()
                    }),
                    log_records: vec![
                        record(
                            vec![
                                kv("audit.type", s("flag")),
                                kv("audit.action", s("created")),
                                kv("audit.id", s("0190a1b2-0000-7000-8000-000000000001")),
                                kv("audit.source", s("upstream")),
                                kv("audit.actor.email", s("dev@example.com")),
                                kv("custom.flag", Value::BoolValue(true)),
                                kv("custom.ratio", Value::DoubleValue(0.25)),
                            ],
                            "audit.flag.created",
                        ),
                        record(vec![kv("http.method", s("GET"))], "app.request"),
                    ],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: String::new(),
            }],
        };
        let bytes = prost::Message::encode_to_vec(&request);
        let decoded = LogBatch::decode_protobuf(bytes.into()).expect("a valid request");
        assert_eq!(decoded.rejected, 0, "{:?}", decoded.first_rejection);
        decoded.batch
    }
}

/// Two batches are equal when they encode to the same request.
impl PartialEq for LogBatch {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.len() == other.len() && self.encode_protobuf() == other.encode_protobuf())
    }
}

impl fmt::Debug for LogBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogBatch")
            .field("records", &self.len())
            .field("resources", &self.inner.resources.len())
            .finish()
    }
}
