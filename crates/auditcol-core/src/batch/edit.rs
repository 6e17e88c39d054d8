//! Changing what records say: the attributes and body of chosen records,
//! as JSON values, for processors that rewrite content (redaction).
//!
//! Records not chosen stay byte for byte as they arrived. A chosen record
//! is decoded, given its new attributes and body, encoded again and checked
//! again exactly as at decode, so every record in a batch stays valid.

use auditcol_model::anyvalue::{json_to_any, view_to_json};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::protobuf::decode_record;
use super::{LogBatch, RecordError, RecordRef};

/// A record's attributes and body as JSON values. Integers stay integers,
/// doubles doubles; byte strings become base64 strings.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEdit {
    /// The attributes, in order.
    pub attributes: Vec<(String, serde_json::Value)>,
    /// The body; `None` for none.
    pub body: Option<serde_json::Value>,
}

impl RecordRef<'_> {
    /// The record's attributes and body, to change and give back to
    /// [`LogBatch::edit_records`].
    pub fn to_edit(&self) -> RecordEdit {
        let view = self.view();
        RecordEdit {
            attributes: view
                .attributes()
                .map(|kv| (kv.key.to_owned(), view_to_json(kv.value)))
                .collect(),
            body: view.body().map(view_to_json),
        }
    }
}

impl LogBatch {
    /// Gives each record to `edit`; the records it answers `Some` for get
    /// those attributes and that body, every other field kept. Returns how
    /// many records changed. A changed record that no longer passes the
    /// record check (an invalid `audit.*` value) fails the whole call with
    /// its position, and the batch is left as it was.
    pub fn edit_records(
        &mut self,
        mut edit: impl FnMut(RecordRef<'_>) -> Option<RecordEdit>,
    ) -> Result<usize, RecordError> {
        let edits: Vec<Option<RecordEdit>> = self.records().map(&mut edit).collect();
        let changed = edits.iter().filter(|e| e.is_some()).count();
        if changed == 0 {
            return Ok(0);
        }
        // Build every new record first, so that an error leaves the batch whole.
        let mut rebuilt = Vec::with_capacity(changed);
        for (i, (record, edit)) in self.records().zip(&edits).enumerate() {
            let Some(edit) = edit else { continue };
            let mut owned = record.record.body.to_vec();
            owned.extend_from_slice(&record.record.patch);
            let mut decoded: opentelemetry_proto::tonic::logs::v1::LogRecord =
                prost::Message::decode(owned.as_slice()).map_err(|e| RecordError {
                    path: format!("records[{i}]"),
                    reason: format!("cannot decode the record: {e}"),
                })?;
            decoded.attributes = edit
                .attributes
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: Some(json_to_any(value)),
                    key_strindex: 0,
                })
                .collect();
            decoded.body = edit.body.as_ref().map(json_to_any);
            let bytes = Bytes::from(prost::Message::encode_to_vec(&decoded));
            let record = decode_record(&bytes, &bytes).map_err(|e| RecordError {
                path: format!("records[{i}]"),
                reason: e.to_string(),
            })?;
            rebuilt.push(record);
        }
        let inner = self.make_mut();
        let mut rebuilt = rebuilt.into_iter();
        let mut edits = edits.iter();
        for record in inner
            .resources
            .iter_mut()
            .flat_map(|r| &mut r.scopes)
            .flat_map(|s| &mut s.records)
        {
            if edits.next().is_some_and(Option::is_some)
                && let Some(new) = rebuilt.next()
            {
                *record = new;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chosen_records_change_and_the_others_stay_byte_for_byte() {
        let mut batch = LogBatch::sample_audit(3);
        batch.prepare_ingest(1_714_557_700_000_000_000, "test");
        let bytes = |r: &RecordRef<'_>| [&r.record.body[..], &r.record.patch[..]].concat();
        let before: Vec<Vec<u8>> = batch.records().map(|r| bytes(&r)).collect();
        let changed = batch
            .edit_records(|r| {
                (r.audit_type() == Some("segment")).then(|| {
                    let mut e = r.to_edit();
                    for (key, value) in &mut e.attributes {
                        if key == "audit.actor.ip" {
                            *value = json!("127.0.0.0");
                        }
                    }
                    e.body = Some(json!({"key": "gone"}));
                    e
                })
            })
            .unwrap();
        assert_eq!(changed, 1);
        let after: Vec<_> = batch.records().collect();
        assert_eq!(bytes(&after[0]), before[0]);
        assert_eq!(bytes(&after[2]), before[2]);
        let edited = after[1].to_audit_event().unwrap();
        assert_eq!(edited.metadata.actor.ip.as_deref(), Some("127.0.0.0"));
        assert_eq!(edited.payload, json!({"key": "gone"}));
        // Everything else of the record is kept: id, source, times, noun, verb.
        assert_eq!(after[1].audit_noun_verb(), Some(("segment", "deleted")));
        assert!(after[1].audit_id().is_some());
        assert_eq!(after[1].time_unix_nano(), 1_714_557_600_000_000_001);
        assert_eq!(
            after[1].observed_time_unix_nano(),
            1_714_557_700_000_000_000
        );
    }

    #[test]
    fn a_change_that_breaks_the_audit_conventions_is_refused_and_nothing_changes() {
        let mut batch = LogBatch::sample_audit(2);
        let before = batch.encode_protobuf();
        let err = batch
            .edit_records(|r| {
                let mut e = r.to_edit();
                for (key, value) in &mut e.attributes {
                    if key == "audit.type" {
                        *value = json!("not a name");
                    }
                }
                Some(e)
            })
            .unwrap_err();
        assert_eq!(err.path, "records[0]");
        assert_eq!(batch.encode_protobuf(), before);
    }

    #[test]
    fn values_keep_their_types() {
        let batch = LogBatch::sample_varied();
        let mut edited = batch.clone();
        edited.edit_records(|r| Some(r.to_edit())).unwrap();
        let a: Vec<RecordEdit> = batch.records().map(|r| r.to_edit()).collect();
        let b: Vec<RecordEdit> = edited.records().map(|r| r.to_edit()).collect();
        assert_eq!(a, b);
    }
}
