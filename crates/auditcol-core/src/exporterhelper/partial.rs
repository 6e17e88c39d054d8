//! What a send answers when it did not deliver its whole batch: the
//! Collector's `consumererror.Logs`, "these records remain, for this reason".
//!
//! A sender that sends one batch as several requests (one webhook request per
//! event, one Kafka message per record) learns record by record what was
//! delivered. Retrying the whole batch after a partial failure would deliver
//! the delivered records twice, so the sender answers
//! [`SendError::Partial`] and the helper retries only what remains.

use crate::{LogBatch, PipelineError};

/// Why one send did not deliver its batch.
#[derive(Debug)]
pub enum SendError {
    /// Nothing of the batch is known to be delivered: the error holds for all
    /// of it (retried whole when retryable).
    Batch(PipelineError),
    /// Part of the batch was delivered; only the rest is retried.
    Partial(PartialFailure),
}

impl From<PipelineError> for SendError {
    fn from(error: PipelineError) -> Self {
        Self::Batch(error)
    }
}

/// The outcome of a send that delivered some records of its batch.
///
/// Built with [`PartialFailure::default`], then [`retry`](Self::retry) for
/// records that failed in a way sending again may fix and
/// [`reject`](Self::reject) for records the destination refused for good.
/// Records in neither were delivered.
#[derive(Debug, Default)]
pub struct PartialFailure {
    /// The records to send again, in batch order.
    pub remaining: LogBatch,
    /// Why they were not delivered (a retry-after hint is honoured); set
    /// whenever `remaining` is not empty.
    pub error: Option<PipelineError>,
    /// How many records the destination refused for good: never sent again,
    /// counted as failed, and the batch's outcome is an error.
    pub rejected: usize,
    /// The first refusal, for the message.
    pub rejection: Option<PipelineError>,
}

impl PartialFailure {
    /// Adds `records` to those sent again, because of `error`. A permanent
    /// `error` rejects them instead.
    pub fn retry(&mut self, records: LogBatch, error: PipelineError) {
        if records.is_empty() {
            return;
        }
        if error.is_permanent() {
            self.reject(records.len(), error);
            return;
        }
        self.remaining.merge(records);
        self.error.get_or_insert(error);
    }

    /// Counts `records` refused for good, because of `error`.
    pub fn reject(&mut self, records: usize, error: PipelineError) {
        if records == 0 {
            return;
        }
        self.rejected += records;
        self.rejection.get_or_insert(error);
    }

    /// The result of a send that tracked the records of `batch` by their
    /// place: `remaining` flags those that failed with `error` (retryable)
    /// and are to be sent again, `delivered` counts those that went through,
    /// and this failure already holds the refusals. When nothing was
    /// delivered or refused, the whole batch's error ([`SendError::Batch`]:
    /// the helper sends it again as it is, no copy); else only what remains.
    pub fn finish(
        mut self,
        batch: &LogBatch,
        remaining: &[bool],
        error: Option<PipelineError>,
        delivered: usize,
    ) -> Result<(), SendError> {
        if let Some(error) = error {
            if delivered == 0 && self.rejected == 0 {
                return Err(SendError::Batch(error));
            }
            let mut rest = batch.clone();
            rest.retain_marked(remaining);
            self.retry(rest, error);
        }
        self.into_result()
    }

    /// True when every record was delivered.
    pub fn is_complete(&self) -> bool {
        self.remaining.is_empty() && self.rejected == 0
    }

    /// `Ok` when every record was delivered, else this failure.
    pub fn into_result(self) -> Result<(), SendError> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(SendError::Partial(self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permanent_error_rejects_instead_of_retrying() {
        let mut p = PartialFailure::default();
        p.retry(LogBatch::sample_audit(2), PipelineError::permanent("400"));
        assert!(p.remaining.is_empty());
        assert_eq!(p.rejected, 2);
        assert_eq!(p.rejection.as_ref().unwrap().message(), "400");
    }

    #[test]
    fn the_first_error_of_each_kind_is_kept() {
        let mut p = PartialFailure::default();
        p.retry(LogBatch::sample_audit(1), PipelineError::retryable("a"));
        p.retry(LogBatch::sample_audit(2), PipelineError::retryable("b"));
        p.reject(1, PipelineError::permanent("c"));
        p.reject(3, PipelineError::permanent("d"));
        assert_eq!(p.remaining.len(), 3);
        assert_eq!(p.error.as_ref().unwrap().message(), "a");
        assert_eq!(p.rejected, 4);
        assert_eq!(p.rejection.as_ref().unwrap().message(), "c");
    }

    #[test]
    fn finish_retries_the_marked_records_or_the_whole_batch_when_nothing_went_through() {
        let batch = LogBatch::sample_audit(3);
        let retry = || Some(PipelineError::retryable("down"));
        let Err(SendError::Partial(p)) =
            PartialFailure::default().finish(&batch, &[false, true, false], retry(), 2)
        else {
            panic!("a partial failure");
        };
        assert_eq!(p.remaining.len(), 1);
        let whole = PartialFailure::default().finish(&batch, &[true, true, true], retry(), 0);
        assert!(matches!(whole, Err(SendError::Batch(_))));
        assert!(
            PartialFailure::default()
                .finish(&batch, &[], None, 3)
                .is_ok()
        );
    }

    #[test]
    fn nothing_remaining_or_rejected_is_success() {
        let mut p = PartialFailure::default();
        p.retry(LogBatch::new(), PipelineError::retryable("a"));
        p.reject(0, PipelineError::permanent("b"));
        assert!(p.into_result().is_ok());
    }
}
