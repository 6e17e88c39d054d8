//! The consumer contract and fan-out.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{LogBatch, PipelineError};

/// A stage that takes batches: a processor, an exporter, a fan-out.
///
/// `consume` completes only when the batch is safely downstream: exported,
/// or written to a durable queue. This is what lets a receiver acknowledge
/// its client without ever losing an acknowledged event.
#[async_trait]
pub trait LogsConsumer: Send + Sync + 'static {
    /// Hands `batch` downstream and waits for its acknowledgement.
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError>;
}

/// A consumer shared between stages.
pub type SharedConsumer = Arc<dyn LogsConsumer>;

/// Sends every batch to several consumers concurrently and completes when
/// all of them have it.
///
/// Every consumer but the last gets a clone; the last takes the batch by
/// move. When several fail, the client hears the most severe failure (see
/// [`PipelineError::most_severe`]); consumers that succeeded keep the batch,
/// so a retry can deliver it twice: delivery is at least once, and `audit.id`
/// lets downstream systems de-duplicate.
pub struct FanOut {
    consumers: Vec<SharedConsumer>,
}

impl FanOut {
    /// A fan-out over `consumers`. With one consumer, prefer using it directly
    /// ([`FanOut::into_consumer`] does so).
    pub fn new(consumers: Vec<SharedConsumer>) -> Self {
        Self { consumers }
    }

    /// The consumer itself when there is just one, a fan-out otherwise.
    pub fn into_consumer(mut self) -> SharedConsumer {
        if self.consumers.len() == 1 {
            self.consumers.pop().expect("one consumer")
        } else {
            Arc::new(self)
        }
    }
}

#[async_trait]
impl LogsConsumer for FanOut {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        let Some((last, rest)) = self.consumers.split_last() else {
            return Ok(());
        };
        let mut sends = Vec::with_capacity(self.consumers.len());
        for consumer in rest {
            sends.push(consumer.consume(batch.clone()));
        }
        sends.push(last.consume(batch));
        let mut outcome = Ok(());
        for result in futures::future::join_all(sends).await {
            outcome = match (outcome, result) {
                (Ok(()), r) => r,
                (Err(e), Ok(())) => Err(e),
                (Err(a), Err(b)) => Err(a.most_severe(b)),
            };
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Recorder {
        seen: Mutex<Vec<usize>>,
        answer: Result<(), PipelineError>,
    }

    #[async_trait]
    impl LogsConsumer for Recorder {
        async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
            self.seen.lock().unwrap().push(batch.len());
            self.answer.clone()
        }
    }

    fn recorder(answer: Result<(), PipelineError>) -> Arc<Recorder> {
        Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            answer,
        })
    }

    #[tokio::test]
    async fn every_consumer_gets_the_batch() {
        let (a, b) = (recorder(Ok(())), recorder(Ok(())));
        let fan = FanOut::new(vec![a.clone(), b.clone()]);
        fan.consume(LogBatch::sample_audit(3)).await.unwrap();
        assert_eq!(*a.seen.lock().unwrap(), vec![3]);
        assert_eq!(*b.seen.lock().unwrap(), vec![3]);
    }

    #[tokio::test]
    async fn one_failure_fails_the_fan_out_after_all_were_tried() {
        let (a, b) = (
            recorder(Err(PipelineError::retryable("down"))),
            recorder(Ok(())),
        );
        let fan = FanOut::new(vec![a, b.clone()]);
        let err = fan.consume(LogBatch::sample_audit(1)).await.unwrap_err();
        assert_eq!(err, PipelineError::retryable("down"));
        assert_eq!(*b.seen.lock().unwrap(), vec![1]);
    }
}
