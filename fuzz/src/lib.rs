//! What must hold for any input, shared by the fuzz targets.
//!
//! Every target decodes its input the way a receiver does, stamps the batch
//! as ingest does, and hands it to [`check_ingested`], which writes it out
//! through every encoder an exporter uses and checks what they wrote. A
//! failed check panics: libFuzzer reports it as a crash and keeps the input.
//!
//! The checks, in short (README.md has the reasons):
//! - ingest: every record has an observed time; every audit event a
//!   lower-case noun and verb, `event_name` = `audit.<noun>.<verb>`, an
//!   `audit.id` and an `audit.source`.
//! - protobuf: the batch encodes to a request that decodes again with
//!   nothing refused, to the same bytes (a fixed point), that a second
//!   ingest leaves alone, and that `prost` (any protobuf library) reads.
//! - OTLP/JSON: one line of valid JSON that decodes to the same batch and
//!   is what serde writes over opentelemetry-proto's types (its twin).
//! - `json` lines: one line per audit event, exactly what serde writes for
//!   the event the record carries (the twin of the direct writer), and the
//!   same whether read from the index made at decode or by a walk.
//! - `console`: one line per record, no control character (C0, DEL, C1)
//!   or Unicode line separator in it.
//! - Kafka `json`/`protobuf` messages of each event read back as the event;
//!   the `otlp_*` messages are the batch's own encodings.
//! - debug exporter: one line per record.

use auditcol_core::LogBatch;
use auditcol_core::model::conventions::{AUDIT_SOURCE, DEFAULT_VERSION, EVENT_NAME_PREFIX};
use auditcol_core::model::view::AnyValueView;
use auditcol_core::model::{Actor, AuditEvent, ExportLogsServiceRequest, is_valid_name};
use auditcol_exporter_file::{Format, encode_batch};
use auditcol_kafka::{Encoding, EventHeaders};

/// The observed time ingest stamps in the targets (2024-05-01T10:00:00Z).
pub const OBSERVED: u64 = 1_714_557_600_000_000_000;

/// Checks a batch fresh from decode + `prepare_ingest(OBSERVED, source)`.
pub fn check_ingested(batch: &LogBatch) {
    check_stamps(batch);
    check_protobuf(batch);
    check_otlp_json(batch);
    check_file_formats(batch);
    check_kafka_encodings(batch);
    check_debug_lines(batch);
}

/// What `prepare_ingest` promises about every record.
fn check_stamps(batch: &LogBatch) {
    assert_eq!(batch.records().count(), batch.len(), "len");
    for record in batch.records() {
        assert_ne!(record.observed_time_unix_nano(), 0, "observed time unset");
        let Some((noun, verb)) = record.audit_noun_verb() else {
            assert!(record.audit_fields().is_none());
            continue;
        };
        for name in [noun, verb] {
            assert!(is_valid_name(name), "invalid name {name:?}");
            assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
        }
        assert_eq!(
            record.event_name(),
            format!("{EVENT_NAME_PREFIX}{noun}.{verb}"),
            "event name"
        );
        assert!(record.audit_id().is_some_and(|id| !id.is_empty()), "id");
        assert!(record.attribute(AUDIT_SOURCE).is_some(), "no audit.source");
        assert!(record.audit_fields().is_some());
    }
}

/// The batch's protobuf is a fixed point of decode, valid for any reader.
fn check_protobuf(batch: &LogBatch) {
    let bytes = batch.encode_protobuf();
    assert_eq!(bytes.len(), batch.encoded_len(), "encoded_len");
    let again = LogBatch::decode_protobuf(bytes.clone().into()).expect("own encoding decodes");
    assert_eq!(
        again.rejected, 0,
        "own encoding has refused records: {:?}",
        again.first_rejection
    );
    let mut again = again.batch;
    assert_eq!(again.len(), batch.len(), "records lost in a round trip");
    assert_eq!(
        again.encode_protobuf(),
        bytes,
        "decode(encode) changed bytes"
    );
    again.prepare_ingest(OBSERVED + 1, "again");
    assert_eq!(
        again.encode_protobuf(),
        bytes,
        "a second ingest changed bytes"
    );
    let request: ExportLogsServiceRequest =
        prost::Message::decode(bytes.as_slice()).expect("prost reads the batch's protobuf");
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert_eq!(records, batch.len(), "prost counts other records");
}

/// OTLP/JSON output: one valid line that decodes to the same batch.
fn check_otlp_json(batch: &LogBatch) {
    let mut json = Vec::new();
    batch
        .write_otlp_json(&mut json)
        .expect("every record decode let in can be written as OTLP/JSON");
    assert!(!json.contains(&b'\n'), "a raw newline in OTLP/JSON");
    serde_json::from_slice::<serde_json::Value>(&json).expect("OTLP/JSON output is JSON");
    let back = LogBatch::decode_json(&json).expect("own OTLP/JSON decodes");
    assert_eq!(back.rejected, 0, "{:?}", back.first_rejection);
    assert_eq!(
        back.batch.len(),
        batch.len(),
        "records lost through OTLP/JSON"
    );
    let mut again = Vec::new();
    back.batch.write_otlp_json(&mut again).expect("rewritten");
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&json),
        "OTLP/JSON is not a fixed point"
    );
    // The writer's twin: serde over opentelemetry-proto's types, which
    // writes non-finite doubles as null where the writer follows proto3.
    let text = String::from_utf8_lossy(&json);
    if !["\"NaN\"", "\"Infinity\"", "\"-Infinity\""]
        .iter()
        .any(|s| text.contains(s))
    {
        let request: ExportLogsServiceRequest =
            prost::Message::decode(batch.encode_protobuf().as_slice()).expect("prost reads it");
        let serde = serde_json::to_string(&request).expect("serialises");
        assert_eq!(text, serde, "OTLP/JSON differs from serde's");
    }
}

/// The file exporter's three formats.
fn check_file_formats(batch: &LogBatch) {
    let audit_events = batch
        .records()
        .filter(|r| r.audit_fields().is_some())
        .count();

    let mut out = Vec::new();
    let skipped = encode_batch(batch, Format::Json, &mut out).expect("json");
    assert_eq!(skipped, batch.len() - audit_events, "json: skipped");
    let text = std::str::from_utf8(&out).expect("json output is UTF-8");
    assert_eq!(text.matches('\n').count(), audit_events, "json: lines");
    let mut lines = text.lines();
    for record in batch.records() {
        let Some(event) = record.to_audit_event() else {
            continue;
        };
        let line = lines.next().expect("a line per event");
        // The index made at decode gives what a walk over the record gives.
        let mut walked = Vec::new();
        assert!(auditcol_core::model::json::write_audit_event_json(
            &record.view(),
            &mut walked
        ));
        assert_eq!(line.as_bytes(), walked.as_slice(), "index and walk differ");
        // The direct writer is byte-identical to serde over the event the
        // record carries (decoded the obvious way: prost, then the mapping).
        let expected = serde_json::to_string(&event).expect("serialises");
        assert_eq!(line, expected, "json line differs from serde's");
        let parsed: AuditEvent = serde_json::from_str(line).expect("a json line parses back");
        assert_eq!(parsed.event_type, event.event_type);
        assert_eq!(parsed.action, event.action);
        assert_eq!(parsed.metadata, event.metadata);
    }

    out.clear();
    encode_batch(batch, Format::Console, &mut out).expect("console");
    let text = std::str::from_utf8(&out).expect("console output is UTF-8");
    assert_eq!(text.matches('\n').count(), batch.len(), "console: lines");
    // Nothing a terminal or a line-oriented viewer would act on.
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{2029}')),
        "console: a control character in {text:?}"
    );

    out.clear();
    encode_batch(batch, Format::OtlpJson, &mut out).expect("otlp_json");
    assert_eq!(
        out.iter().filter(|b| **b == b'\n').count(),
        1,
        "otlp_json: one line"
    );
    assert_eq!(out.last(), Some(&b'\n'));
}

/// The Kafka exporter's messages, read back by the receiver's decode.
fn check_kafka_encodings(batch: &LogBatch) {
    for record in batch.records() {
        let Some(event) = record.to_audit_event() else {
            let mut out = Vec::new();
            assert_eq!(Encoding::Json.write_event(&record, &mut out), Ok(false));
            continue;
        };
        let headers = EventHeaders {
            id: record.audit_id(),
            source: record.attribute(AUDIT_SOURCE),
        };

        let mut value = Vec::new();
        assert_eq!(Encoding::Json.write_event(&record, &mut value), Ok(true));
        let back = Encoding::Json
            .decode(&value, headers, "kafka")
            .expect("a json message of an ingested event decodes");
        let read = back.records().next().expect("one record");
        assert_eq!(back.len(), 1);
        assert_eq!(read.to_audit_event().as_ref(), Some(&event), "json message");
        assert_eq!(read.audit_id(), record.audit_id());

        value.clear();
        let payload_is_object = matches!(
            record.body(),
            None | Some(AnyValueView::Empty | AnyValueView::Kvlist(_))
        );
        match Encoding::Protobuf.write_event(&record, &mut value) {
            Ok(written) => {
                assert!(written && payload_is_object);
                let back = Encoding::Protobuf
                    .decode(&value, headers, "kafka")
                    .expect("a protobuf message of an ingested event decodes");
                let read = back
                    .records()
                    .next()
                    .and_then(|r| r.to_audit_event())
                    .expect("one event");
                // What proto3 and Flipt's schema cannot carry: an empty
                // version or actor field (left out, read as absent), and
                // payload numbers as other than doubles (the payload is a
                // google.protobuf.Struct), so the payload is compared apart.
                let mut expected = event.clone();
                if expected.version.is_empty() {
                    expected.version = DEFAULT_VERSION.to_owned();
                }
                expected.metadata.actor = without_empty_fields(&event.metadata.actor);
                expected.payload = read.payload.clone();
                assert_eq!(read, expected, "protobuf message");
            }
            Err(_) => assert!(!payload_is_object, "refused an object payload"),
        }
    }
    let mut value = Vec::new();
    Encoding::OtlpProto
        .write_batch(batch, &mut value)
        .expect("otlp_proto");
    assert_eq!(value, batch.encode_protobuf());
    value.clear();
    Encoding::OtlpJson
        .write_batch(batch, &mut value)
        .expect("otlp_json");
}

/// `actor` without its empty fields.
fn without_empty_fields(actor: &Actor) -> Actor {
    let mut kept = Actor::default();
    for (name, value) in actor.fields().filter(|(_, v)| !v.is_empty()) {
        kept.set(name, value.to_owned());
    }
    kept
}

/// The debug exporter at `verbosity: normal`: a line per record.
fn check_debug_lines(batch: &LogBatch) {
    let config: auditcol_exporter_debug::DebugExporterConfig =
        auditcol_core::config::parse_component_config(&serde_json::json!({"verbosity": "normal"}))
            .expect("config");
    let lines = auditcol_exporter_debug::DebugExporter::new("debug", &config).lines(batch);
    assert_eq!(lines.len(), batch.len());
    for line in lines {
        assert!(!line.contains('\n'), "debug: a newline in {line:?}");
    }
}

/// A protobuf request's own count of records, when `prost` reads it.
pub fn prost_record_count(bytes: &[u8]) -> Option<usize> {
    let request: ExportLogsServiceRequest = prost::Message::decode(bytes).ok()?;
    Some(
        request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
    )
}

/// The webhook receiver's path for a request body in `format`, as JSON and
/// as NDJSON: decode, the batch of the events, ingest; then what every batch
/// must satisfy, and that each record carries the event the receiver read.
pub fn check_webhook_body(format: WebhookFormat, body: &[u8]) {
    use auditcol_receiver_webhook::fuzzing::{BodyKind, batch_of, decode_request};
    let source = format.default_source();
    for kind in [BodyKind::Json, BodyKind::Ndjson] {
        let decoded = match decode_request(format, kind, body) {
            Ok(decoded) => decoded,
            Err(e) => {
                assert!(
                    e.path == "body" || e.path.starts_with("events"),
                    "an error outside the request: {e}"
                );
                continue;
            }
        };
        if format == WebhookFormat::Audit {
            assert_eq!(decoded.ignored, 0, "audit events are never ignored");
        }
        let batch = match batch_of(source, &decoded.events, OBSERVED) {
            Ok(batch) => batch,
            Err(message) => {
                assert!(message.starts_with("events["), "{message}");
                continue;
            }
        };
        assert_eq!(batch.len(), decoded.events.len(), "an event per record");
        check_ingested(&batch);
        for (record, received) in batch.records().zip(&decoded.events) {
            let event = record.to_audit_event().expect("an audit event");
            assert_eq!(event, as_carried(&received.event), "the event changed");
            assert_eq!(record.attribute(AUDIT_SOURCE), Some(source));
            for (key, value) in &received.attributes {
                assert_eq!(record.attribute(key), Some(value.as_str()), "{key}");
            }
            if format == WebhookFormat::Flagsmith {
                let verb = event.action.as_str();
                assert!(matches!(verb, "created" | "updated" | "deleted"), "{verb}");
            }
        }
    }
}

pub use auditcol_receiver_webhook::Format as WebhookFormat;

/// The event as a record carries it (DESIGN.md §2): noun and verb in lower
/// case, an unknown timestamp (0) replaced by the time received, and the
/// payload through the JSON ⇄ AnyValue mapping (integers beyond `i64`
/// become doubles).
pub fn as_carried(event: &AuditEvent) -> AuditEvent {
    use auditcol_core::model::anyvalue::{any_to_json, json_to_any};
    let mut carried = event.clone();
    carried.event_type.make_ascii_lowercase();
    carried.action.make_ascii_lowercase();
    if carried.timestamp == 0 {
        carried.timestamp = OBSERVED;
    }
    if !carried.payload.is_null() {
        carried.payload = any_to_json(&json_to_any(&carried.payload));
    }
    carried
}
