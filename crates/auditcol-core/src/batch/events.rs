//! Batches built from typed [`AuditEvent`]s: what the webhook receivers and
//! tests produce.

use auditcol_model::conventions::AUDIT_SOURCE;
use auditcol_model::view::container;
use auditcol_model::{AuditEvent, string_kv};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::LogBatch;
use super::RecordError;

/// The instrumentation scope name of records auditcol builds itself.
const SCOPE_NAME: &str = "auditcol";

impl LogBatch {
    /// One resource with one scope holding a record per event; the resource
    /// carries `service.name` = `source` and every record `audit.source`
    /// (where the event does not say otherwise).
    ///
    /// Events go through the same check as decoded records; an event that
    /// breaks the audit conventions (an invalid noun, say) is an error
    /// naming its index: `events[3]: …`.
    pub fn try_from_events<'e>(
        source: &str,
        events: impl IntoIterator<Item = &'e AuditEvent>,
    ) -> Result<Self, RecordError> {
        Self::try_from_events_with_attributes(
            source,
            events.into_iter().map(|event| (event, std::iter::empty())),
        )
    }

    /// Like [`LogBatch::try_from_events`], each event with string attributes
    /// of its own that the event model has no field for: an event id given
    /// by the source (`audit.id`, kept by `prepare_ingest`) or attributes of
    /// the source's namespace (`flagsmith.project.id`). They follow the
    /// event's own attributes; a key the event's record already has is not
    /// added again.
    ///
    /// ```
    /// use auditcol_core::LogBatch;
    /// use auditcol_core::model::AuditEvent;
    /// let event = AuditEvent::new("feature", "created");
    /// let batch = LogBatch::try_from_events_with_attributes(
    ///     "flagsmith",
    ///     [(&event, [("audit.id", "42"), ("flagsmith.project.id", "6")])],
    /// )
    /// .unwrap();
    /// let record = batch.records().next().unwrap();
    /// assert_eq!(record.audit_id(), Some("42"));
    /// assert_eq!(record.attribute("flagsmith.project.id"), Some("6"));
    /// ```
    pub fn try_from_events_with_attributes<'e, 'a, A>(
        source: &str,
        events: impl IntoIterator<Item = (&'e AuditEvent, A)>,
    ) -> Result<Self, RecordError>
    where
        A: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for (event, attributes) in events {
            let mut record = event.to_log_record();
            for (key, value) in attributes {
                if !record.attributes.iter().any(|kv| kv.key == key) {
                    record.attributes.push(string_kv(key, value));
                }
            }
            if !record.attributes.iter().any(|kv| kv.key == AUDIT_SOURCE) {
                record.attributes.push(string_kv(AUDIT_SOURCE, source));
            }
            let start = buf.len();
            record
                .encode(&mut buf)
                .expect("encoding into a Vec cannot fail");
            ranges.push(start..buf.len());
        }
        let resource = Resource {
            attributes: vec![string_kv("service.name", source)],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: SCOPE_NAME.to_owned(),
            ..Default::default()
        };
        let mut resource_header = Vec::new();
        auditcol_model::wire::put_bytes(
            &mut resource_header,
            container::RESOURCE,
            &resource.encode_to_vec(),
        );
        let mut scope_header = Vec::new();
        auditcol_model::wire::put_bytes(
            &mut scope_header,
            container::SCOPE,
            &scope.encode_to_vec(),
        );
        LogBatch::from_encoded_records(
            resource_header.into(),
            scope_header.into(),
            &Bytes::from(buf),
            ranges,
        )
    }

    /// Like [`LogBatch::try_from_events`], for tests whose events are known
    /// to be valid; panics on an invalid one.
    #[cfg(any(test, feature = "test-util"))]
    pub fn from_events<'e>(source: &str, events: impl IntoIterator<Item = &'e AuditEvent>) -> Self {
        Self::try_from_events(source, events).expect("events built in code are valid")
    }
}
