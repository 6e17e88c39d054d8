//! Decoded events → the pipeline, through the same core path as OTLP
//! records: `LogBatch::try_from_events_with_attributes` (the record check),
//! `prepare_ingest` (observed time, event name, `audit.id` where the source
//! gave none, `audit.source`), `consume`, which completes only once the
//! pipeline has the batch.

use auditcol_core::receiverhelper::now_unix_nanos;
use auditcol_core::{ComponentId, LogBatch, PipelineError, RecordError, SharedConsumer};

use crate::decode::ReceivedEvent;

/// The receiver's link to its pipeline.
pub(crate) struct Ingest {
    id: ComponentId,
    /// `audit.source` of every event.
    source: String,
    next: SharedConsumer,
}

/// Why a request's events were not accepted.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// The events break the audit conventions: the client must not retry.
    Invalid { message: String, records: usize },
    /// The pipeline refused the batch of `records`.
    Pipeline {
        error: PipelineError,
        records: usize,
    },
}

impl Ingest {
    pub(crate) fn new(id: ComponentId, source: String, next: SharedConsumer) -> Self {
        Self { id, source, next }
    }

    /// Hands all of `events` to the pipeline as one batch, or none of them;
    /// completes once the pipeline has them. Returns how many were accepted.
    pub(crate) async fn accept(&self, events: &[ReceivedEvent]) -> Result<usize, Rejection> {
        if events.is_empty() {
            return Ok(0);
        }
        let batch = batch_of(&self.source, events, now_unix_nanos()).map_err(|message| {
            Rejection::Invalid {
                message,
                records: events.len(),
            }
        })?;
        let records = batch.len();
        tracing::debug!(component = %self.id, records, "events received");
        self.next
            .consume(batch)
            .await
            .map_err(|error| Rejection::Pipeline { error, records })?;
        Ok(records)
    }
}

/// The most bytes decoding a body may hold, per byte of body, at its peak:
/// the events read (`serde_json` values of the payloads) and their batch.
/// Measured on bodies shaped to cost the most (`tests/decoded_cost.rs`).
pub const DECODE_COST_PER_BYTE: usize = 64;

/// What the receiver reserves with the memory limiters before decoding a
/// body of `len` bytes (beyond the body itself): never less than decoding
/// it holds at its peak.
pub fn decode_cost(len: usize) -> usize {
    len.saturating_mul(DECODE_COST_PER_BYTE)
        .saturating_add(64 << 10)
}

/// The batch of a request's events, stamped by `prepare_ingest` with
/// `observed` and `source`; an invalid event refuses them all, with its
/// place in the request.
pub fn batch_of(source: &str, events: &[ReceivedEvent], observed: u64) -> Result<LogBatch, String> {
    let mut batch = LogBatch::try_from_events_with_attributes(
        source,
        events
            .iter()
            .map(|e| (&e.event, e.attributes.iter().map(|(k, v)| (*k, v.as_str())))),
    )
    .map_err(|e| in_request_terms(&e, events))?;
    batch.prepare_ingest(observed, source);
    Ok(batch)
}

/// The core names events by their place in the batch (`events[i]`); the
/// client needs their place in its request, which differs when entries
/// before them were ignored.
fn in_request_terms(error: &RecordError, events: &[ReceivedEvent]) -> String {
    let index = error
        .path
        .strip_prefix("events[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)));
    match index {
        Some((i, rest)) if i < events.len() => {
            format!("events[{}]{rest}: {}", events[i].index, error.reason)
        }
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::model::AuditEvent;

    #[test]
    fn a_core_error_is_reported_at_the_events_place_in_the_request() {
        let events = [3, 5].map(|index| ReceivedEvent {
            index,
            event: AuditEvent::new("flag", "created"),
            attributes: Vec::new(),
        });
        let error = RecordError {
            path: "events[1]".into(),
            reason: "too deep".into(),
        };
        assert_eq!(in_request_terms(&error, &events), "events[5]: too deep");
        let error = RecordError {
            path: "elsewhere".into(),
            reason: "x".into(),
        };
        assert_eq!(in_request_terms(&error, &events), "elsewhere: x");
    }
}
