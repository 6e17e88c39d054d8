//! Bytes → the OTLP receivers' decode (`LogBatch::decode_protobuf`, what the
//! gRPC and HTTP servers call on a request body) → `prepare_ingest` → every
//! exporter encoder, with the invariants of `auditcol_fuzz::check_ingested`.
#![no_main]

use auditcol_core::LogBatch;
use auditcol_core::model::conventions::SOURCE_OTLP;
use auditcol_fuzz::{OBSERVED, check_ingested, prost_record_count};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = LogBatch::decode_protobuf(bytes::Bytes::copy_from_slice(data)) else {
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
