//! The ingest policy: what a receiver adds to every record it accepts.

use auditcol_model::conventions::{AUDIT_ID, AUDIT_SOURCE, EVENT_NAME_PREFIX, EventIds};
use auditcol_model::view::{common, log_record};
use auditcol_model::wire::{bytes_field_len, put_bytes, put_fixed64, put_key, put_varint};
use bytes::BytesMut;

use super::{LogBatch, Record, RecordIndex};

/// Bytes of patch a record usually needs: an observed time, an event name,
/// an `audit.id` and an `audit.source` (the scratch buffer's capacity).
pub(super) const PATCH_ESTIMATE: usize = 11 + 40 + 52 + 40;

/// The size of the buffers patches are cut from.
const PATCH_CHUNK: usize = 64 * 1024;

impl LogBatch {
    /// What a receiver does to every record it accepts: sets
    /// `observed_time_unix_nano` where absent, and on audit events lower-cases
    /// `audit.type`/`audit.action`, sets `event_name` to
    /// `audit.<type>.<action>` (replacing a client's own), assigns
    /// `audit.id` (UUIDv7) and `audit.source` = `source` where absent.
    ///
    /// The record bytes are not rewritten: the new fields go into a patch
    /// appended to each record (one buffer for the whole batch). Only a noun
    /// or verb with upper-case letters makes a copy of its record.
    pub fn prepare_ingest(&mut self, observed_time_unix_nano: u64, source: &str) {
        let inner = self.make_mut();
        // Patches are cut from chunks: what one holds is what its records
        // need, and a chunk's unused tail is less than one patch. (One
        // buffer sized by an estimate per record kept the estimate's
        // overshoot, ~38 bytes per tiny record, as long as the batch.)
        let mut arena = BytesMut::new();
        let mut scratch = Vec::with_capacity(PATCH_ESTIMATE + source.len());
        let mut ids = EventIds::new();
        // The same for every record: written once, copied in.
        let mut source_attribute = Vec::new();
        put_string_attribute(&mut source_attribute, AUDIT_SOURCE, source);
        let mut id_head = Vec::new();
        put_string_attribute_head(&mut id_head, AUDIT_ID, ID_LEN);
        let constant = Constant {
            observed: observed_time_unix_nano,
            source_attribute: &source_attribute,
            id_head: &id_head,
        };
        for record in inner
            .resources
            .iter_mut()
            .flat_map(|r| &mut r.scopes)
            .flat_map(|s| &mut s.records)
        {
            scratch.clear();
            scratch.extend_from_slice(&record.patch);
            stamp(record, &mut scratch, &constant, &mut ids);
            if scratch.len() != record.patch.len() {
                if arena.capacity() < scratch.len() {
                    arena = BytesMut::with_capacity(PATCH_CHUNK.max(scratch.len()));
                }
                arena.extend_from_slice(&scratch);
                record.patch = arena.split().freeze();
            }
        }
    }
}

/// The length of an `audit.id` (a hyphenated UUID).
const ID_LEN: usize = 36;

/// What ingest adds the same way to every record of a batch.
struct Constant<'a> {
    observed: u64,
    /// The encoded `audit.source` attribute.
    source_attribute: &'a [u8],
    /// The encoded `audit.id` attribute up to its value.
    id_head: &'a [u8],
}

/// Appends to `patch` the fields `record` lacks.
fn stamp(record: &mut Record, patch: &mut Vec<u8>, constant: &Constant<'_>, ids: &mut EventIds) {
    let index = &mut record.index;
    if index.observed == 0 {
        put_fixed64(
            patch,
            log_record::OBSERVED_TIME_UNIX_NANO,
            constant.observed,
        );
        index.observed = constant.observed;
    }
    if !index.has(RecordIndex::AUDIT) {
        return;
    }
    if index.has(RecordIndex::UPPER) {
        // Names are ASCII (checked at decode), so lower-casing keeps every
        // length and offset.
        let mut body = BytesMut::from(&record.body[..]);
        body[index.noun.range()].make_ascii_lowercase();
        body[index.verb.range()].make_ascii_lowercase();
        record.body = body.freeze();
        index.flags &= !RecordIndex::UPPER;
    }
    // A client's own event name on an audit record is replaced: readers
    // route on it, and it must agree with the noun and verb.
    if !index.has(RecordIndex::EVENT_NAME_OK) {
        let (noun, verb) = (
            &record.body[index.noun.range()],
            &record.body[index.verb.range()],
        );
        put_key(patch, log_record::EVENT_NAME, 2);
        put_varint(
            patch,
            (EVENT_NAME_PREFIX.len() + noun.len() + 1 + verb.len()) as u64,
        );
        patch.extend_from_slice(EVENT_NAME_PREFIX.as_bytes());
        patch.extend_from_slice(noun);
        patch.push(b'.');
        patch.extend_from_slice(verb);
        index.flags |= RecordIndex::EVENT_NAME_OK;
    }
    if !index.has(RecordIndex::HAS_ID) {
        let id = ids.next_id();
        debug_assert_eq!(id.len(), ID_LEN);
        patch.extend_from_slice(constant.id_head);
        patch.extend_from_slice(id.as_bytes());
        index.flags |= RecordIndex::HAS_ID;
    }
    if !index.has(RecordIndex::HAS_SOURCE) {
        patch.extend_from_slice(constant.source_attribute);
        index.flags |= RecordIndex::HAS_SOURCE;
    }
}

/// Appends a `LogRecord.attributes` entry with a string value.
pub(super) fn put_string_attribute(out: &mut Vec<u8>, key: &str, value: &str) {
    put_string_attribute_head(out, key, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// Appends a `LogRecord.attributes` entry with a string value of
/// `value_len` bytes, up to the value itself.
fn put_string_attribute_head(out: &mut Vec<u8>, key: &str, value_len: usize) {
    let any_len = bytes_field_len(common::STRING_VALUE, value_len);
    let kv_len = bytes_field_len(common::KEY, key.len()) + bytes_field_len(common::VALUE, any_len);
    put_key(out, log_record::ATTRIBUTES, 2);
    put_varint(out, kv_len as u64);
    put_bytes(out, common::KEY, key.as_bytes());
    put_key(out, common::VALUE, 2);
    put_varint(out, any_len as u64);
    put_key(out, common::STRING_VALUE, 2);
    put_varint(out, value_len as u64);
}
