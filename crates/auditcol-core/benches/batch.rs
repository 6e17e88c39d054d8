//! Micro-benchmarks of the per-record work of a pipeline, one core each:
//! decode (protobuf, JSON), ingest, noun/verb lookup, and the encoders.
//!
//! ```sh
//! cargo bench -p auditcol-core --bench batch
//! ```
//!
//! Throughput is reported in records (criterion's "elements").

use auditcol_core::LogBatch;
use auditcol_core::model::AuditEvent;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const RECORDS: usize = 1000;

/// A request of `RECORDS` audit events like the load generator's (~370
/// bytes each: actor, a three-key payload).
fn request() -> Vec<u8> {
    const KINDS: [(&str, &str); 4] = [
        ("flag", "created"),
        ("segment", "deleted"),
        ("flag", "updated"),
        ("variant", "created"),
    ];
    let events: Vec<AuditEvent> = (0..RECORDS)
        .map(|i| {
            let (noun, verb) = KINDS[i % KINDS.len()];
            let mut e = AuditEvent::new(noun, verb);
            e.metadata.actor.authentication = Some("token".into());
            e.metadata.actor.email = Some("dev@example.com".into());
            e.payload = serde_json::json!({"key": format!("flag-{i}"), "enabled": i % 2 == 0, "namespace_key": "default"});
            e.timestamp = 1_714_557_600_000_000_000 + i as u64;
            e
        })
        .collect();
    LogBatch::try_from_events("bench", &events)
        .expect("valid events")
        .encode_protobuf()
}

fn decode(bytes: &[u8]) -> LogBatch {
    LogBatch::decode_protobuf(bytes::Bytes::copy_from_slice(bytes))
        .expect("valid request")
        .batch
}

fn benches(c: &mut Criterion) {
    let proto = request();
    let batch = decode(&proto);
    let mut json = Vec::new();
    batch.write_otlp_json(&mut json).expect("valid batch");
    let mut ingested = batch.clone();
    ingested.prepare_ingest(1, "otlp");

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("decode_protobuf", |b| {
        let shared = bytes::Bytes::from(proto.clone());
        b.iter(|| LogBatch::decode_protobuf(black_box(shared.clone())).expect("valid"))
    });
    group.bench_function("decode_otlp_json", |b| {
        b.iter(|| LogBatch::decode_json(black_box(&json)).expect("valid"))
    });
    group.bench_function("prepare_ingest", |b| {
        b.iter_batched(
            || batch.clone(),
            |mut batch| {
                batch.prepare_ingest(1, "otlp");
                batch
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("noun_verb", |b| {
        b.iter(|| {
            black_box(&ingested)
                .records()
                .filter(|r| r.audit_noun_verb().is_some_and(|(n, _)| n == "flag"))
                .count()
        })
    });
    group.bench_function("encode_flipt_json", |b| {
        let mut out = Vec::with_capacity(RECORDS * 400);
        b.iter(|| {
            out.clear();
            for record in black_box(&ingested).records() {
                record.write_audit_json(&mut out);
                out.push(b'\n');
            }
            out.len()
        })
    });
    group.bench_function("encode_otlp_json", |b| {
        let mut out = Vec::with_capacity(RECORDS * 800);
        b.iter(|| {
            out.clear();
            black_box(&ingested)
                .write_otlp_json(&mut out)
                .expect("valid batch");
            out.len()
        })
    });
    group.bench_function("encode_protobuf", |b| {
        let mut out = Vec::with_capacity(RECORDS * 500);
        b.iter(|| {
            out.clear();
            black_box(&ingested).encode_protobuf_into(&mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(batch_benches, benches);
criterion_main!(batch_benches);
