//! OTLP/JSON ⇄ [`LogBatch`], through the transcoder in [`crate::otlp_json`]:
//! JSON is parsed once into protobuf bytes, which then take the one decode
//! path every request takes.

use bytes::Bytes;

use super::{DecodeError, Decoded, LogBatch};
use crate::otlp_json::{JsonError, json_to_protobuf, protobuf_to_json};

impl LogBatch {
    /// Decodes an OTLP/JSON `ExportLogsServiceRequest`: the whole proto3
    /// JSON mapping (see [`crate::otlp_json`]); records are then checked as
    /// [`LogBatch::decode_protobuf`] does.
    pub fn decode_json(json: &[u8]) -> Result<Decoded, DecodeError> {
        Self::decode_protobuf(Self::transcode_json(json)?)
    }

    /// The first half of [`LogBatch::decode_json`]: the request as
    /// OTLP/protobuf, in a buffer of at most `json.len()` bytes, for a
    /// receiver that reserves [`LogBatch::decode_cost`] before decoding it.
    pub fn transcode_json(json: &[u8]) -> Result<Bytes, DecodeError> {
        let mut protobuf = Vec::with_capacity(json.len());
        json_to_protobuf(json, &mut protobuf).map_err(|e| DecodeError {
            message: format!("invalid OTLP JSON: {e}"),
        })?;
        Ok(Bytes::from(protobuf))
    }

    /// Appends the OTLP/JSON `ExportLogsServiceRequest` of this batch to
    /// `out`. Fails only on a record that decode would not have let in (an
    /// invariant broken); `out` is then left as it was.
    pub fn write_otlp_json(&self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        protobuf_to_json(&self.encode_protobuf(), out)
    }
}
