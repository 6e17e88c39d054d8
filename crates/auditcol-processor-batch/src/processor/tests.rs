//! The batch processor's behaviour. Time-based cases run on tokio's paused
//! clock, which only moves when every task is idle; assertions on elapsed
//! time are about that virtual clock, never the wall clock.

use std::collections::VecDeque;
use std::pin::pin;

use futures::poll;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;

/// The next stage: records each call, answers from a script (then `Ok`),
/// and can be held shut to play a slow exporter.
struct Downstream {
    calls: Mutex<Vec<usize>>,
    entered: mpsc::UnboundedSender<usize>,
    gate: Semaphore,
    answers: Mutex<VecDeque<Result<(), PipelineError>>>,
}

impl Downstream {
    fn calls(&self) -> Vec<usize> {
        self.calls.lock().unwrap().clone()
    }

    /// Lets every held and future call through.
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl LogsConsumer for Downstream {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.calls.lock().unwrap().push(batch.len());
        let _ = self.entered.send(batch.len());
        drop(self.gate.acquire().await.unwrap());
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

/// A downstream that answers at once, with `answers` then `Ok`.
fn downstream(
    answers: Vec<Result<(), PipelineError>>,
) -> (Arc<Downstream>, UnboundedReceiver<usize>) {
    let (entered, calls) = mpsc::unbounded_channel();
    let downstream = Arc::new(Downstream {
        calls: Mutex::default(),
        entered,
        gate: Semaphore::new(0),
        answers: Mutex::new(answers.into()),
    });
    downstream.open();
    (downstream, calls)
}

/// A downstream that holds every call until [`Downstream::open`].
fn held_downstream() -> (Arc<Downstream>, UnboundedReceiver<usize>) {
    let (entered, calls) = mpsc::unbounded_channel();
    let downstream = Arc::new(Downstream {
        calls: Mutex::default(),
        entered,
        gate: Semaphore::new(0),
        answers: Mutex::default(),
    });
    (downstream, calls)
}

/// Starts a processor. Unless the test says otherwise, it batches strictly by
/// size and timeout (`flush_when_idle: false`), the rule most tests are about.
async fn started(mut config: serde_json::Value, next: Arc<Downstream>) -> Arc<BatchProcessor> {
    if let Some(map) = config.as_object_mut() {
        map.entry("flush_when_idle").or_insert(json!(false));
    }
    let config: BatchConfig = auditcol_core::config::parse_component_config(&config).unwrap();
    let processor = Arc::new(BatchProcessor::new(
        ComponentId::new("batch", Some("test")),
        config,
        next,
    ));
    processor.start().await.unwrap();
    processor
}

fn send(processor: &Arc<BatchProcessor>, records: usize) -> JoinHandle<Result<(), PipelineError>> {
    let processor = Arc::clone(processor);
    tokio::spawn(async move { processor.consume(LogBatch::sample_audit(records)).await })
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn size_trigger_sends_concurrent_callers_in_one_downstream_call() {
    let (next, _) = downstream(vec![]);
    let processor = started(json!({"send_batch_size": 6, "timeout": "1h"}), next.clone()).await;
    let t0 = Instant::now();
    let callers = [
        send(&processor, 2),
        send(&processor, 2),
        send(&processor, 2),
    ];
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    assert_eq!(next.calls(), vec![6]);
    assert!(t0.elapsed() < HOUR, "sent by size, not by the timer");
}

#[tokio::test(start_paused = true)]
async fn timeout_sends_what_is_pending() {
    let (next, _) = downstream(vec![]);
    let processor = started(
        json!({"send_batch_size": 100, "timeout": "200ms"}),
        next.clone(),
    )
    .await;
    let t0 = Instant::now();
    processor.consume(LogBatch::sample_audit(3)).await.unwrap();
    assert_eq!(next.calls(), vec![3]);
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn timer_runs_from_the_first_pending_record() {
    let (next, _) = downstream(vec![]);
    let processor = started(
        json!({"send_batch_size": 100, "timeout": "200ms"}),
        next.clone(),
    )
    .await;
    let t0 = Instant::now();
    let first = send(&processor, 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = send(&processor, 2);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(next.calls(), vec![3]);
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(350),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_sends_immediately_regardless_of_size() {
    let (next, _) = downstream(vec![]);
    let processor = started(
        json!({"send_batch_size": 100, "timeout": "0"}),
        next.clone(),
    )
    .await;
    let t0 = Instant::now();
    processor.consume(LogBatch::sample_audit(3)).await.unwrap();
    assert_eq!(next.calls(), vec![3]);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn callers_wait_until_downstream_accepts() {
    let (next, mut entered) = held_downstream();
    let processor = started(json!({"send_batch_size": 2, "timeout": "1h"}), next.clone()).await;
    let first = send(&processor, 1);
    let second = send(&processor, 1);
    assert_eq!(entered.recv().await, Some(2));
    assert!(!first.is_finished() && !second.is_finished());
    next.open();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test]
async fn downstream_error_reaches_every_caller_of_the_batch() {
    let (next, _) = downstream(vec![Err(PipelineError::permanent("bad record"))]);
    let processor = started(json!({"send_batch_size": 4, "timeout": "1h"}), next.clone()).await;
    let callers = [send(&processor, 2), send(&processor, 2)];
    for caller in callers {
        assert_eq!(
            caller.await.unwrap(),
            Err(PipelineError::permanent("bad record"))
        );
    }
    assert_eq!(next.calls(), vec![4]);
}

#[tokio::test]
async fn max_size_splits_a_flush_into_pieces() {
    let (next, _) = downstream(vec![]);
    let processor = started(
        json!({"send_batch_size": 4, "send_batch_max_size": 4, "timeout": "1h"}),
        next.clone(),
    )
    .await;
    processor.consume(LogBatch::sample_audit(10)).await.unwrap();
    assert_eq!(next.calls(), vec![4, 4, 2]);
}

#[tokio::test]
async fn one_failed_piece_fails_the_caller_after_every_piece_was_tried() {
    let (next, _) = downstream(vec![Ok(()), Err(PipelineError::retryable("exporter down"))]);
    let processor = started(
        json!({"send_batch_size": 4, "send_batch_max_size": 4, "timeout": "1h"}),
        next.clone(),
    )
    .await;
    let err = processor
        .consume(LogBatch::sample_audit(12))
        .await
        .unwrap_err();
    assert_eq!(err, PipelineError::retryable("exporter down"));
    assert_eq!(next.calls(), vec![4, 4, 4]);
}

#[tokio::test]
async fn caller_hears_the_most_severe_failure_among_pieces() {
    let (next, _) = downstream(vec![
        Err(PipelineError::retryable("exporter down")),
        Err(PipelineError::permanent("bad record")),
    ]);
    let processor = started(
        json!({"send_batch_size": 2, "send_batch_max_size": 2, "timeout": "1h"}),
        next.clone(),
    )
    .await;
    let err = processor
        .consume(LogBatch::sample_audit(4))
        .await
        .unwrap_err();
    assert_eq!(err, PipelineError::permanent("bad record"));
}

#[tokio::test]
async fn slow_downstream_does_not_hold_up_the_next_flush() {
    let (next, mut entered) = held_downstream();
    let processor = started(json!({"send_batch_size": 1, "timeout": "1h"}), next.clone()).await;
    let first = send(&processor, 1);
    assert_eq!(entered.recv().await, Some(1));
    let second = send(&processor, 1);
    assert_eq!(
        entered.recv().await,
        Some(1),
        "second flush starts while the first is held"
    );
    next.open();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_pending_records() {
    let (next, _) = downstream(vec![]);
    let processor = started(
        json!({"send_batch_size": 100, "timeout": "1h"}),
        next.clone(),
    )
    .await;
    let t0 = Instant::now();
    let mut caller = pin!(processor.consume(LogBatch::sample_audit(3)));
    assert!(
        poll!(&mut caller).is_pending(),
        "the batch is queued, not sent"
    );
    let (result, ()) = tokio::join!(caller, processor.shutdown(Instant::now() + HOUR));
    result.unwrap();
    assert_eq!(next.calls(), vec![3]);
    assert!(t0.elapsed() < HOUR, "sent by shutdown, not by the timer");
}

#[tokio::test(start_paused = true)]
async fn callers_still_waiting_at_the_deadline_are_told_to_retry() {
    let (next, mut entered) = held_downstream();
    let processor = started(json!({"send_batch_size": 1, "timeout": "1h"}), next.clone()).await;
    let caller = send(&processor, 1);
    assert_eq!(entered.recv().await, Some(1));
    processor
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    let err = caller.await.unwrap().unwrap_err();
    assert!(matches!(err, PipelineError::Retryable { .. }), "{err:?}");
    assert!(
        err.message()
            .starts_with("batch processor batch/test is shutting down"),
        "{err}"
    );
}

#[tokio::test]
async fn consume_after_shutdown_is_refused_as_retryable() {
    let (next, _) = downstream(vec![]);
    let processor = started(json!({}), next.clone()).await;
    processor.shutdown(Instant::now()).await;
    let err = processor
        .consume(LogBatch::sample_audit(1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PipelineError::retryable("batch processor batch/test is not running")
    );
    assert!(next.calls().is_empty());
}

#[tokio::test]
async fn starting_twice_is_an_error() {
    let (next, _) = downstream(vec![]);
    let processor = started(json!({}), next).await;
    let err = processor.start().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "batch processor batch/test is already running"
    );
}

#[tokio::test]
async fn empty_batches_are_acknowledged_without_a_flush() {
    let (next, _) = downstream(vec![]);
    let processor = started(json!({"timeout": "0"}), next.clone()).await;
    processor.consume(LogBatch::new()).await.unwrap();
    assert!(next.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn when_idle_a_lone_caller_is_sent_at_once() {
    let (next, _) = downstream(vec![]);
    let processor = started(
        json!({"timeout": "1h", "flush_when_idle": true}),
        next.clone(),
    )
    .await;
    let t0 = Instant::now();
    processor.consume(LogBatch::sample_audit(3)).await.unwrap();
    assert_eq!(next.calls(), vec![3]);
    assert!(
        t0.elapsed() < HOUR,
        "sent because nothing was in flight, not by the timer"
    );
}

#[tokio::test(start_paused = true)]
async fn when_idle_callers_arriving_during_a_flush_go_out_together_after_it() {
    let (next, mut entered) = held_downstream();
    let processor = started(
        json!({"timeout": "1h", "flush_when_idle": true}),
        next.clone(),
    )
    .await;
    let first = send(&processor, 1);
    assert_eq!(
        entered.recv().await,
        Some(1),
        "the first caller is sent at once"
    );
    let later = [send(&processor, 2), send(&processor, 3)];
    // On the paused clock this returns only when every task is idle: both
    // callers have been merged while the first flush is held downstream.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        next.calls(),
        vec![1],
        "nothing else is sent while a flush is in flight"
    );
    next.open();
    first.await.unwrap().unwrap();
    for caller in later {
        caller.await.unwrap().unwrap();
    }
    assert_eq!(next.calls(), vec![1, 5]);
}
