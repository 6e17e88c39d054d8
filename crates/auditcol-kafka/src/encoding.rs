//! The four message encodings, both ways: what the exporter writes and the
//! receiver reads.
//!
//! | `encoding`   | one message holds                         | value |
//! |--------------|-------------------------------------------|-------|
//! | `json`       | one audit event                           | the Flipt v0.2 event JSON |
//! | `protobuf`   | one audit event                           | Flipt's `flipt.audit.Event` ([`crate::flipt_proto`]) |
//! | `otlp_proto` | a batch                                   | an OTLP `ExportLogsServiceRequest`, protobuf |
//! | `otlp_json`  | a batch                                   | the same, OTLP/JSON |
//!
//! `json` and `protobuf` carry audit events only, and not the event id or
//! origin, which Flipt's event has no field for: those travel as the message
//! headers `audit.id` and `audit.source`, and the receiver puts them back.
//! The OTLP encodings carry every record as it is.

use std::fmt;

use auditcol_core::model::conventions::{AUDIT_ID, AUDIT_SOURCE};
use auditcol_core::{LogBatch, RecordRef};
use bytes::Bytes;
use serde::Deserialize;

use crate::flipt_proto;

/// The header carrying a `json`/`protobuf` event's `audit.id`.
pub const HEADER_AUDIT_ID: &str = AUDIT_ID;
/// The header carrying a `json`/`protobuf` event's `audit.source`.
pub const HEADER_AUDIT_SOURCE: &str = AUDIT_SOURCE;

/// How records become Kafka message values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One Flipt v0.2 JSON event per message.
    #[default]
    Json,
    /// One Flipt `flipt.audit.Event` protobuf per message.
    Protobuf,
    /// One OTLP/protobuf `ExportLogsServiceRequest` per message.
    OtlpProto,
    /// One OTLP/JSON `ExportLogsServiceRequest` per message.
    OtlpJson,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a record or batch cannot be written in an encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

/// Why a message cannot be read in an encoding: what is wrong, e.g.
/// `not a Flipt v0.2 JSON event: missing field `action` at line 1 column 20`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageDecodeError(pub String);

/// What a message says about its event besides the value: its headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventHeaders<'a> {
    /// `audit.id`.
    pub id: Option<&'a str>,
    /// `audit.source`.
    pub source: Option<&'a str>,
}

impl Encoding {
    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
            Self::OtlpProto => "otlp_proto",
            Self::OtlpJson => "otlp_json",
        }
    }

    /// True when a message holds one audit event (`json`, `protobuf`);
    /// false when it holds a batch of records (`otlp_*`).
    pub fn per_event(self) -> bool {
        matches!(self, Self::Json | Self::Protobuf)
    }

    /// Appends the message value of one record (`json`, `protobuf`).
    /// `Ok(false)`, nothing written, when the record is not an audit event.
    pub fn write_event(
        self,
        record: &RecordRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, EncodeError> {
        let Some(fields) = record.audit_fields() else {
            return Ok(false);
        };
        match self {
            Self::Json => Ok(auditcol_core::model::json::write_audit_fields_json(
                &fields, out,
            )),
            Self::Protobuf => flipt_proto::write_event(&fields, out)
                .map(|()| true)
                .map_err(|e| EncodeError(e.to_string())),
            Self::OtlpProto | Self::OtlpJson => Err(EncodeError(format!(
                "encoding {self} writes batches, not single events"
            ))),
        }
    }

    /// Appends the message value of a whole batch (`otlp_proto`, `otlp_json`).
    pub fn write_batch(self, batch: &LogBatch, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::OtlpProto => {
                batch.encode_protobuf_into(out);
                Ok(())
            }
            Self::OtlpJson => batch
                .write_otlp_json(out)
                .map_err(|e| EncodeError(format!("cannot write OTLP/JSON: {e}"))),
            Self::Json | Self::Protobuf => Err(EncodeError(format!(
                "encoding {self} writes one event per message, not batches"
            ))),
        }
    }

    /// Reads one message value into a batch. For `json` and `protobuf`, the
    /// event gets `audit.id` and `audit.source` from `headers` when they
    /// are there, and `service.name`/`audit.source` = `source` otherwise.
    /// The records go through the same checks as every received record; a
    /// message with one invalid record is refused whole.
    pub fn decode(
        self,
        value: &[u8],
        headers: EventHeaders<'_>,
        source: &str,
    ) -> Result<LogBatch, MessageDecodeError> {
        let event = match self {
            Self::Json => serde_json::from_slice(value)
                .map_err(|e| MessageDecodeError(format!("not a Flipt v0.2 JSON event: {e}")))?,
            Self::Protobuf => flipt_proto::read_event(value).map_err(|e| {
                MessageDecodeError(format!("not a flipt.audit.Event protobuf: {e}"))
            })?,
            Self::OtlpProto | Self::OtlpJson => {
                let decoded = if self == Self::OtlpProto {
                    LogBatch::decode_protobuf(Bytes::copy_from_slice(value))
                } else {
                    LogBatch::decode_json(value)
                }
                .map_err(|e| MessageDecodeError(e.message))?;
                return decoded
                    .all_or_nothing()
                    .map_err(|e| MessageDecodeError(format!("invalid record: {e}")));
            }
        };
        let source = headers.source.filter(|s| !s.is_empty()).unwrap_or(source);
        let mut attributes = Vec::with_capacity(2);
        if let Some(id) = headers.id.filter(|id| !id.is_empty()) {
            attributes.push((AUDIT_ID, id));
        }
        attributes.push((AUDIT_SOURCE, source));
        LogBatch::try_from_events_with_attributes(source, [(&event, attributes)])
            .map_err(|e| MessageDecodeError(format!("invalid audit event: {}", e.reason)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::model::AuditEvent;

    fn varied() -> LogBatch {
        LogBatch::sample_varied()
    }

    fn one_event_each(
        encoding: Encoding,
        batch: &LogBatch,
    ) -> Vec<(Vec<u8>, Option<String>, Option<String>)> {
        batch
            .records()
            .filter_map(|record| {
                let mut out = Vec::new();
                encoding.write_event(&record, &mut out).unwrap().then(|| {
                    (
                        out,
                        record.audit_id().map(str::to_owned),
                        record.attribute(AUDIT_SOURCE).map(str::to_owned),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn per_event_encodings_skip_records_that_are_not_audit_events() {
        let batch = varied();
        assert_eq!(batch.len(), 2);
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            assert_eq!(one_event_each(encoding, &batch).len(), 1, "{encoding}");
        }
    }

    #[test]
    fn per_event_encodings_round_trip_the_event_its_id_and_source() {
        let mut batch = LogBatch::sample_audit(3);
        batch.prepare_ingest(1, "flipt");
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            for ((value, id, source), record) in one_event_each(encoding, &batch)
                .into_iter()
                .zip(batch.records())
            {
                let headers = EventHeaders {
                    id: id.as_deref(),
                    source: source.as_deref(),
                };
                let back = encoding.decode(&value, headers, "kafka").unwrap();
                let got = back.records().next().unwrap();
                assert_eq!(got.to_audit_event(), record.to_audit_event(), "{encoding}");
                assert_eq!(got.audit_id(), record.audit_id(), "{encoding}");
                assert_eq!(
                    got.attribute(AUDIT_SOURCE),
                    record.attribute(AUDIT_SOURCE),
                    "{encoding}"
                );
            }
        }
    }

    #[test]
    fn without_headers_the_receivers_source_is_used() {
        let event = AuditEvent::new("flag", "created");
        let json = serde_json::to_vec(&event).unwrap();
        let batch = Encoding::Json
            .decode(&json, EventHeaders::default(), "kafka/gateway")
            .unwrap();
        let record = batch.records().next().unwrap();
        assert_eq!(record.attribute(AUDIT_SOURCE), Some("kafka/gateway"));
        assert_eq!(record.audit_id(), None, "assigned later, at ingest");
    }

    #[test]
    fn batch_encodings_round_trip_every_record() {
        let batch = varied();
        for encoding in [Encoding::OtlpProto, Encoding::OtlpJson] {
            let mut out = Vec::new();
            encoding.write_batch(&batch, &mut out).unwrap();
            let back = encoding
                .decode(&out, EventHeaders::default(), "kafka")
                .unwrap();
            assert_eq!(back, batch, "{encoding}");
        }
    }

    #[test]
    fn undecodable_messages_say_what_they_are_not() {
        let cases = [
            (
                Encoding::Json,
                &b"{\"type\":\"flag\"}"[..],
                "not a Flipt v0.2 JSON event: missing field `action`",
            ),
            (
                Encoding::Json,
                b"{\"type\":\"fl ag\",\"action\":\"x\"}",
                "invalid audit event",
            ),
            (
                Encoding::Protobuf,
                b"\x0a\x05ab",
                "not a flipt.audit.Event protobuf",
            ),
            (Encoding::OtlpProto, b"\x0a\x05ab", "invalid OTLP protobuf"),
            (Encoding::OtlpJson, b"[", "invalid OTLP JSON"),
        ];
        for (encoding, value, expected) in cases {
            let err = encoding
                .decode(value, EventHeaders::default(), "kafka")
                .unwrap_err();
            assert!(err.0.contains(expected), "{encoding}: {err}");
        }
    }
}
