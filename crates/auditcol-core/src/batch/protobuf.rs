//! OTLP/protobuf ⇄ [`LogBatch`]: the one walk over a request at decode, and
//! the concatenation that encodes.

use std::ops::Range;

use auditcol_model::conventions::EVENT_NAME_PREFIX;
use auditcol_model::view::{
    CheckError, check_attributes_holder, check_record, check_utf8, common, container,
};
use auditcol_model::wire::{Fields, bytes_field_len, put_key, put_varint};
use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use super::chunks::{Chunks, Located};
use super::{
    DecodeError, Inner, LogBatch, Record, RecordError, RecordIndex, ResourceGroup, ScopeGroup, Span,
};

/// The records of a request that passed, and what happened to the others.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The valid records.
    pub batch: LogBatch,
    /// How many records were left out.
    pub rejected: usize,
    /// Why the first one was.
    pub first_rejection: Option<RecordError>,
}

impl Decoded {
    /// The batch when every record passed; the first rejection otherwise.
    pub fn all_or_nothing(self) -> Result<LogBatch, RecordError> {
        match self.first_rejection {
            None => Ok(self.batch),
            Some(e) => Err(e),
        }
    }

    fn reject(&mut self, error: RecordError) {
        self.rejected += 1;
        self.first_rejection.get_or_insert(error);
    }
}

fn invalid(path: &str, error: impl std::fmt::Display) -> DecodeError {
    DecodeError {
        message: if path.is_empty() {
            format!("invalid OTLP protobuf: {error}")
        } else {
            format!("invalid OTLP protobuf: {path}: {error}")
        },
    }
}

impl LogBatch {
    /// Decodes an OTLP/protobuf `ExportLogsServiceRequest`, keeping `bytes`
    /// (records are slices of it, not copies).
    ///
    /// A malformed container (request, `ResourceLogs`, `ScopeLogs`, resource
    /// or scope) fails the whole request; a record that is malformed or
    /// breaks the audit conventions is left out and reported in [`Decoded`].
    pub fn decode_protobuf(bytes: Bytes) -> Result<Decoded, DecodeError> {
        Self::decode_protobuf_chunks(&Chunks::from(bytes))
    }

    /// [`LogBatch::decode_protobuf`] of a request that arrived in pieces (the
    /// frames of a gRPC call): records are slices of the pieces, and only
    /// one that straddles two pieces is copied. The outcome is the same as
    /// decoding the joined bytes, errors included.
    pub fn decode_protobuf_chunks(message: &Chunks) -> Result<Decoded, DecodeError> {
        let mut decoded = Decoded::default();
        let mut resources = Vec::new();
        let mut r = 0usize;
        for field in message.fields(0..message.len()) {
            let field = field.map_err(|e| invalid("", e))?;
            if field.number != container::REQUEST_RESOURCE_LOGS {
                continue;
            }
            let path = format!("resourceLogs[{r}]");
            let payload = field
                .value
                .bytes()
                .ok_or_else(|| invalid(&path, "not a message"))?;
            if let Some(group) = decode_resource_logs(message, payload.range, &path, &mut decoded)?
            {
                resources.push(group);
            }
            r += 1;
        }
        decoded.batch = LogBatch::from_resources(resources);
        Ok(decoded)
    }

    /// An upper bound of the bytes that [`LogBatch::decode_protobuf_chunks`]
    /// of `message` and then [`LogBatch::prepare_ingest`] allocate beyond the
    /// request's own bytes (which the batch keeps): an entry per record and
    /// per group, each record's patch (its fixed part; the noun and verb it
    /// repeats are at most the request's size), and copies of records and
    /// headers (at most the request's size again). Found by reading tags
    /// and lengths only, so a receiver can reserve it before decoding.
    pub fn decode_cost(message: &Chunks) -> usize {
        let (mut records, mut groups) = (0usize, 0usize);
        let children = |range: Range<usize>, number: u32| {
            message
                .fields(range)
                .map_while(Result::ok)
                .filter(move |f| f.number == number)
                .map(|f| f.value.bytes().map(|at| at.range))
        };
        for resource in children(0..message.len(), container::REQUEST_RESOURCE_LOGS) {
            groups += 1;
            let Some(resource) = resource else { continue };
            for scope in children(resource, container::SCOPE_LOGS) {
                groups += 1;
                let Some(scope) = scope else { continue };
                records += children(scope, container::LOG_RECORDS).count();
            }
        }
        records * DECODED_RECORD_COST + groups * DECODED_GROUP_COST + 2 * message.len()
    }

    /// Encodes as an OTLP/protobuf `ExportLogsServiceRequest`.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_protobuf_into(&mut out);
        out
    }

    /// Appends the OTLP/protobuf `ExportLogsServiceRequest` to `out`.
    pub fn encode_protobuf_into(&self, out: &mut Vec<u8>) {
        for resource in &self.inner.resources {
            put_key(out, container::REQUEST_RESOURCE_LOGS, 2);
            put_varint(out, resource.payload_len() as u64);
            out.extend_from_slice(&resource.header);
            for scope in &resource.scopes {
                put_key(out, container::SCOPE_LOGS, 2);
                put_varint(out, scope.payload_len() as u64);
                out.extend_from_slice(&scope.header);
                for record in &scope.records {
                    put_key(out, container::LOG_RECORDS, 2);
                    put_varint(out, record.encoded_len() as u64);
                    out.extend_from_slice(&record.body);
                    out.extend_from_slice(&record.patch);
                }
            }
        }
    }

    /// Size in bytes of the protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        self.inner
            .resources
            .iter()
            .map(|r| bytes_field_len(container::REQUEST_RESOURCE_LOGS, r.payload_len()))
            .sum()
    }
}

impl ResourceGroup {
    fn payload_len(&self) -> usize {
        self.header.len()
            + self
                .scopes
                .iter()
                .map(|s| bytes_field_len(container::SCOPE_LOGS, s.payload_len()))
                .sum::<usize>()
    }
}

impl ScopeGroup {
    fn payload_len(&self) -> usize {
        self.header.len()
            + self
                .records
                .iter()
                .map(|r| bytes_field_len(container::LOG_RECORDS, r.encoded_len()))
                .sum::<usize>()
    }
}

/// What a decoded record holds beyond its bytes: its entry, and the fixed
/// part of its patch (an observed time; an event name's tag, length,
/// `audit.` and `.`; an `audit.id`; an `audit.source` up to 64 bytes long),
/// rounded up.
pub(super) const DECODED_RECORD_COST: usize = std::mem::size_of::<Record>() + 192;

/// What a `ResourceLogs` or `ScopeLogs` holds beyond its bytes: its entry,
/// and the batch's vectors growing by doubling.
const DECODED_GROUP_COST: usize =
    2 * (std::mem::size_of::<ResourceGroup>() + std::mem::size_of::<ScopeGroup>());

/// The fields of a container other than its list of children, as one
/// `Bytes`: a slice of the request when they are contiguous and within one
/// piece (the usual case), a copy otherwise.
#[derive(Default)]
struct Header {
    ranges: Vec<Range<usize>>,
}

impl Header {
    fn push(&mut self, range: Range<usize>) {
        match self.ranges.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.ranges.push(range),
        }
    }

    fn into_bytes(self, message: &Chunks) -> Bytes {
        match self.ranges.as_slice() {
            [] => Bytes::new(),
            [one] => message.piece(one.clone()).into_bytes(),
            many => {
                let mut out = BytesMut::new();
                for range in many {
                    out.extend_from_slice(message.piece(range.clone()).as_slice());
                }
                out.freeze()
            }
        }
    }
}

// `ResourceLogs` and `ScopeLogs` share their layout: 1 resource/scope,
// 2 children, 3 schema URL.
const _: () = assert!(container::SCOPE_LOGS == container::LOG_RECORDS);
const _: () = assert!(container::RESOURCE == container::SCOPE);

/// Whether `name` is `audit.<noun>.<verb>` with noun and verb in lower case.
fn is_event_name_of(name: &str, noun: &str, verb: &str) -> bool {
    // Part by part over slices: a chain of byte iterators cost ~150
    // instructions per record here.
    fn lower_is(part: &[u8], got: &[u8]) -> bool {
        part.len() == got.len()
            && part
                .iter()
                .zip(got)
                .all(|(want, got)| want.to_ascii_lowercase() == *got)
    }
    let (name, noun, verb) = (name.as_bytes(), noun.as_bytes(), verb.as_bytes());
    let prefix = EVENT_NAME_PREFIX.as_bytes();
    let noun_end = prefix.len() + noun.len();
    name.len() == noun_end + 1 + verb.len()
        && lower_is(prefix, &name[..prefix.len()])
        && lower_is(noun, &name[prefix.len()..noun_end])
        && name[noun_end] == b'.'
        && lower_is(verb, &name[noun_end + 1..])
}

/// Checks the resource or scope of a container.
type CheckPart = fn(&[u8]) -> Result<(), CheckError>;

/// Walks a container message — a `ResourceLogs` or a `ScopeLogs` — whose
/// field 2 holds its children: each child's payload and index go to
/// `child`; field 1 (the resource or scope, checked by `check_first`) and
/// field 3 (`schema_url`) are checked and kept, with unknown fields, as the
/// container's header.
fn walk_container(
    message: &Chunks,
    payload: Range<usize>,
    path: &str,
    (first_name, check_first): (&str, CheckPart),
    (child_name, mut child): (&str, impl FnMut(Located, usize) -> Result<(), DecodeError>),
) -> Result<Bytes, DecodeError> {
    let mut header = Header::default();
    let mut index = 0usize;
    let mut has_first = false;
    for field in message.fields(payload) {
        let field = field.map_err(|e| invalid(path, e))?;
        if field.number == container::SCOPE_LOGS {
            let Some(at) = field.value.bytes() else {
                return Err(invalid(
                    &format!("{path}.{child_name}[{index}]"),
                    "not a message",
                ));
            };
            child(at, index)?;
            index += 1;
            continue;
        }
        let checked = match (field.number, field.value.bytes()) {
            // Protobuf readers merge the occurrences, the record views read
            // the last: refused, so that both read the same.
            (container::RESOURCE, Some(_)) if has_first => Err(CheckError::from_reason(format!(
                "{first_name} appears more than once: send it once"
            ))),
            (container::RESOURCE, Some(at)) => {
                has_first = true;
                check_first(message.piece_at(at).as_slice()).map_err(|e| e.within(first_name))
            }
            (container::SCHEMA_URL, Some(at)) => check_utf8(message.piece_at(at).as_slice())
                .map(|_| ())
                .map_err(|e| e.within("schemaUrl")),
            (container::RESOURCE | container::SCHEMA_URL, None) => {
                Err(CheckError::from_reason("not length-delimited"))
            }
            _ => Ok(()),
        };
        checked.map_err(|e| invalid(path, e))?;
        header.push(field.span);
    }
    Ok(header.into_bytes(message))
}

fn decode_resource_logs(
    message: &Chunks,
    payload: Range<usize>,
    path: &str,
    decoded: &mut Decoded,
) -> Result<Option<ResourceGroup>, DecodeError> {
    let mut scopes = Vec::new();
    let header = walk_container(
        message,
        payload,
        path,
        ("resource", check_resource),
        ("scopeLogs", |at: Located, s| {
            let scope_path = format!("{path}.scopeLogs[{s}]");
            if let Some(group) = decode_scope_logs(message, at.range, &scope_path, decoded)? {
                scopes.push(group);
            }
            Ok(())
        }),
    )?;
    Ok((!scopes.is_empty()).then_some(ResourceGroup { header, scopes }))
}

fn decode_scope_logs(
    message: &Chunks,
    payload: Range<usize>,
    path: &str,
    decoded: &mut Decoded,
) -> Result<Option<ScopeGroup>, DecodeError> {
    // Counted first (tags and lengths only) so the records are not moved
    // again and again while the vector grows.
    let mut records = Vec::with_capacity(
        message
            .fields(payload.clone())
            .map_while(Result::ok)
            .filter(|f| f.number == container::LOG_RECORDS)
            .count(),
    );
    let header = walk_container(
        message,
        payload,
        path,
        ("scope", check_scope),
        ("logRecords", |at, i| {
            let piece = message.piece_at(at);
            match decode_record(piece.source(), piece.as_slice()) {
                Ok(record) => records.push(record),
                Err(e) => decoded.reject(RecordError {
                    path: if e.path.is_empty() {
                        format!("{path}.logRecords[{i}]")
                    } else {
                        format!("{path}.logRecords[{i}].{}", e.path)
                    },
                    reason: e.reason,
                }),
            }
            Ok(())
        }),
    )?;
    Ok((!records.is_empty()).then_some(ScopeGroup { header, records }))
}

/// Checks an `InstrumentationScope`: name, version, attributes,
/// `dropped_attributes_count`.
fn check_scope(bytes: &[u8]) -> Result<(), CheckError> {
    check_attributes_holder(
        bytes,
        common::SCOPE_ATTRIBUTES,
        &[common::SCOPE_NAME, common::SCOPE_VERSION],
        &[common::SCOPE_DROPPED_ATTRIBUTES_COUNT],
    )
}

/// Checks a `Resource`: its attributes, `dropped_attributes_count`, and
/// the strings of its entity references (`EntityRef`: fields 1 to 4 are all
/// strings).
fn check_resource(bytes: &[u8]) -> Result<(), CheckError> {
    const ENTITY_REFS: u32 = 3;
    check_attributes_holder(
        bytes,
        common::RESOURCE_ATTRIBUTES,
        &[],
        &[common::RESOURCE_DROPPED_ATTRIBUTES_COUNT],
    )?;
    for (n, field) in Fields::new(bytes)
        .flatten()
        .filter(|f| f.number == ENTITY_REFS)
        .enumerate()
    {
        let entity = field
            .value
            .bytes()
            .ok_or_else(|| CheckError::from_reason("not length-delimited"))?;
        check_attributes_holder(entity, 0, &[1, 2, 3, 4], &[])
            .map_err(|e| e.within(&format!("entityRefs[{n}]")))?;
    }
    Ok(())
}

/// Checks one record and indexes it; the error's path is relative to the record.
pub(super) fn decode_record(source: &Bytes, bytes: &[u8]) -> Result<Record, CheckError> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(CheckError::from_reason("the record is larger than 4 GiB"));
    }
    let check = check_record(bytes)?;
    check.audit.check()?;
    let mut index = RecordIndex {
        time: check.time_unix_nano,
        observed: check.observed_time_unix_nano,
        ..Default::default()
    };
    let mut actor = SmallVec::new();
    if let Some((noun, verb)) = check.audit.noun_verb() {
        index.flags |= RecordIndex::AUDIT;
        index.noun = Span::of(noun.as_bytes(), bytes);
        index.verb = Span::of(verb.as_bytes(), bytes);
        if let Some(version) = check.audit.version {
            index.version = Span::of(version.as_bytes(), bytes);
            index.flags |= RecordIndex::HAS_VERSION;
        }
        if let Some(status) = check.audit.status {
            index.status = Span::of(status.as_bytes(), bytes);
            index.flags |= RecordIndex::HAS_STATUS;
        }
        if let Some(body) = check.body {
            index.body = Span::of(body, bytes);
            index.flags |= RecordIndex::HAS_BODY;
        }
        actor = check.actor.iter().map(|kv| Span::of(kv, bytes)).collect();
        let upper = |name: &str| name.bytes().any(|b| b.is_ascii_uppercase());
        if upper(noun) || upper(verb) {
            index.flags |= RecordIndex::UPPER;
        }
        if check.audit.id.is_some() {
            index.flags |= RecordIndex::HAS_ID;
        }
        if check.audit.source.is_some() {
            index.flags |= RecordIndex::HAS_SOURCE;
        }
    }
    if let Some((noun, verb)) = check.audit.noun_verb()
        && is_event_name_of(check.event_name, noun, verb)
    {
        index.flags |= RecordIndex::EVENT_NAME_OK;
    }
    Ok(Record {
        body: source.slice_ref(bytes),
        patch: Bytes::new(),
        index,
        actor,
    })
}

impl LogBatch {
    /// Builds a batch from already-encoded resource groups (for builders
    /// inside the crate).
    pub(super) fn from_encoded_records(
        resource_header: Bytes,
        scope_header: Bytes,
        records: &Bytes,
        ranges: impl IntoIterator<Item = Range<usize>>,
    ) -> Result<LogBatch, RecordError> {
        let mut out = Vec::new();
        for (i, range) in ranges.into_iter().enumerate() {
            let record = decode_record(records, &records[range]).map_err(|e| RecordError {
                path: format!("events[{i}]"),
                reason: e.to_string(),
            })?;
            out.push(record);
        }
        let len = out.len();
        if len == 0 {
            return Ok(LogBatch::new());
        }
        Ok(LogBatch {
            inner: std::sync::Arc::new(Inner {
                resources: vec![ResourceGroup {
                    header: resource_header,
                    scopes: vec![ScopeGroup {
                        header: scope_header,
                        records: out,
                    }],
                }],
                len,
            }),
        })
    }
}

#[cfg(test)]
mod event_name_tests {
    use super::is_event_name_of;

    #[test]
    fn event_names_match_only_the_lower_case_noun_and_verb() {
        assert!(is_event_name_of("audit.flag.created", "flag", "created"));
        assert!(is_event_name_of("audit.flag.created", "Flag", "CREATED"));
        assert!(!is_event_name_of("audit.Flag.created", "flag", "created"));
        assert!(!is_event_name_of("audit.flag.create", "flag", "created"));
        assert!(!is_event_name_of("audit.flag_created", "flag", "created"));
        assert!(!is_event_name_of("audit.fla.gcreated", "flag", "created"));
        assert!(!is_event_name_of("Audit.flag.created", "flag", "created"));
        assert!(!is_event_name_of("", "flag", "created"));
        assert!(!is_event_name_of("audit.flag.createdx", "flag", "created"));
    }
}
