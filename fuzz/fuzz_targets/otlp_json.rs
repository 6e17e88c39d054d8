//! Bytes → the OTLP/HTTP receiver's JSON decode (`LogBatch::decode_json`)
//! → `prepare_ingest` → every exporter encoder, with the invariants of
//! `auditcol_fuzz::check_ingested`; and the transcoder's promise that its
//! protobuf is what `prost` writes for the same request.
#![no_main]

use auditcol_core::LogBatch;
use auditcol_core::model::ExportLogsServiceRequest;
use auditcol_core::model::conventions::SOURCE_OTLP;
use auditcol_core::otlp_json::json_to_protobuf;
use auditcol_fuzz::{OBSERVED, check_ingested};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut protobuf = Vec::new();
    if json_to_protobuf(data, &mut protobuf).is_ok() {
        let request: ExportLogsServiceRequest = prost::Message::decode(protobuf.as_slice())
            .expect("prost reads the transcoder's protobuf");
        assert_eq!(
            prost::Message::encode_to_vec(&request),
            protobuf,
            "the transcoder's protobuf is not prost's canonical encoding"
        );
    } else {
        assert!(protobuf.is_empty(), "output left behind on error");
    }
    let Ok(decoded) = LogBatch::decode_json(data) else {
        return;
    };
    assert_eq!(decoded.rejected == 0, decoded.first_rejection.is_none());
    let mut batch = decoded.batch;
    batch.prepare_ingest(OBSERVED, SOURCE_OTLP);
    check_ingested(&batch);
});
