//! A Kafka message → the kafka receiver's decode (`Encoding::decode`, with
//! the `audit.id` / `audit.source` headers) → `prepare_ingest` → every
//! exporter encoder.
//!
//! Input layout: byte 0 chooses the encoding (bits 0-1: json, protobuf,
//! otlp_proto, otlp_json) and the headers present (bit 2: `audit.id`, bit 3:
//! `audit.source`); each header present takes a length byte and that many
//! bytes; the rest is the message value.
#![no_main]

use auditcol_core::model::conventions::AUDIT_SOURCE;
use auditcol_fuzz::{OBSERVED, check_ingested};
use auditcol_kafka::{Encoding, EventHeaders};
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [Encoding; 4] = [
    Encoding::Json,
    Encoding::Protobuf,
    Encoding::OtlpProto,
    Encoding::OtlpJson,
];

/// The receiver's own source (`kafka`, or a receiver name).
const SOURCE: &str = "kafka";

fn take_header<'a>(present: bool, rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if !present {
        return None;
    }
    let (&len, tail) = rest.split_first()?;
    let len = usize::from(len).min(tail.len());
    let (value, tail) = tail.split_at(len);
    *rest = tail;
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(selector & 3)];
    // The receiver reads a header that is not UTF-8 as absent.
    let id = take_header(selector & 4 != 0, &mut rest).and_then(|v| std::str::from_utf8(v).ok());
    let source =
        take_header(selector & 8 != 0, &mut rest).and_then(|v| std::str::from_utf8(v).ok());
    let value = rest;
    if value.is_empty() {
        return; // refused before decode: "the message has no value"
    }
    let headers = EventHeaders { id, source };
    let Ok(mut batch) = encoding.decode(value, headers, SOURCE) else {
        return;
    };
    if encoding.per_event() {
        assert_eq!(batch.len(), 1, "one event per message");
        let record = batch.records().next().expect("one record");
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            assert_eq!(record.audit_id(), Some(id), "audit.id from the header");
        }
        let want = source.filter(|s| !s.is_empty()).unwrap_or(SOURCE);
        assert_eq!(record.attribute(AUDIT_SOURCE), Some(want), "audit.source");
    }
    batch.prepare_ingest(OBSERVED, SOURCE);
    check_ingested(&batch);

    // An event read from a message is written back to the same message
    // content: the exporter and the receiver agree on every encoding.
    if encoding.per_event() {
        let record = batch.records().next().expect("one record");
        let event = record.to_audit_event().expect("an audit event");
        let mut again = Vec::new();
        assert_eq!(
            encoding.write_event(&record, &mut again),
            Ok(true),
            "written back"
        );
        let back = encoding
            .decode(&again, headers, SOURCE)
            .expect("what the exporter wrote decodes");
        let read = back.records().next().and_then(|r| r.to_audit_event());
        assert_eq!(read.as_ref(), Some(&event), "{encoding}: round trip");
    }
});
