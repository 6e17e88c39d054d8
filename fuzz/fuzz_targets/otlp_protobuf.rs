//! Bytes → the OTLP receivers' decode (`LogBatch::decode_protobuf`, what the
//! gRPC and HTTP servers call on a request body) → `prepare_ingest` → every
//! exporter encoder, with the invariants of `auditcol_fuzz::check_ingested`.
//! The same bytes cut into pieces (`decode_protobuf_chunks`, what the gRPC
//! server decodes from a request's frames) decode to the same outcome.
#![no_main]

use auditcol_core::LogBatch;
use auditcol_core::batch::Chunks;
use auditcol_core::model::conventions::SOURCE_OTLP;
use auditcol_fuzz::{OBSERVED, check_ingested, prost_record_count};
use libfuzzer_sys::fuzz_target;

/// `data` cut into pieces of sizes that depend on the input, each piece in
/// a buffer of its own.
fn cut(data: &[u8]) -> Chunks {
    const STRIDES: [usize; 8] = [1, 7, 2, 64, 3, 19, 500, 5];
    let mut chunks = Chunks::new();
    let (mut at, mut i) = (0, data.len() + data.first().map_or(0, |&b| usize::from(b)));
    while at < data.len() {
        let end = (at + STRIDES[i % STRIDES.len()]).min(data.len());
        chunks.push(bytes::Bytes::copy_from_slice(&data[at..end]));
        (at, i) = (end, i + 1);
    }
    chunks
}

fuzz_target!(|data: &[u8]| {
    let whole = LogBatch::decode_protobuf(bytes::Bytes::copy_from_slice(data));
    let pieces = cut(data);
    assert_eq!(
        LogBatch::decode_cost(&pieces),
        LogBatch::decode_cost(&Chunks::from(data.to_vec()))
    );
    match (&whole, LogBatch::decode_protobuf_chunks(&pieces)) {
        (Err(a), Err(b)) => assert_eq!(*a, b),
        (Ok(a), Ok(b)) => {
            assert_eq!(a.rejected, b.rejected);
            assert_eq!(a.first_rejection, b.first_rejection);
            assert_eq!(a.batch.encode_protobuf(), b.batch.encode_protobuf());
        }
        (a, b) => panic!("whole: {:?}, pieces: {:?}", a.as_ref().err(), b.err()),
    }
    let Ok(decoded) = whole else {
        return;
    };
    assert_eq!(decoded.rejected == 0, decoded.first_rejection.is_none());
    if let Some(rejection) = &decoded.first_rejection {
        assert!(rejection.path.starts_with("resourceLogs["), "{rejection}");
    }
    // Every record is either kept or refused, never lost.
    if let Some(records) = prost_record_count(data) {
        assert_eq!(
            decoded.batch.len() + decoded.rejected,
            records,
            "records lost"
        );
    }
    let mut batch = decoded.batch;
    batch.prepare_ingest(OBSERVED, SOURCE_OTLP);
    check_ingested(&batch);
});
