use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::*;
use crate::config::{ConfigDuration, parse_component_config};

/// A sender that answers attempts from a script, records what it sent, and
/// can be held at a gate until the test releases it.
struct ScriptedSender {
    script: Mutex<VecDeque<Outcome>>,
    /// The answer once the script is used up.
    otherwise: Outcome,
    attempts: AtomicUsize,
    sent: Mutex<Vec<usize>>,
    /// When set, each attempt waits for a permit.
    gate: Option<Semaphore>,
    /// Told when an attempt begins.
    entered: mpsc::UnboundedSender<()>,
}

impl ScriptedSender {
    fn new(script: Vec<Outcome>, otherwise: Outcome) -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (entered, rx) = mpsc::unbounded_channel();
        let sender = Self {
            script: Mutex::new(script.into()),
            otherwise,
            attempts: AtomicUsize::new(0),
            sent: Mutex::new(Vec::new()),
            gate: None,
            entered,
        };
        (Arc::new(sender), rx)
    }

    fn gated() -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (entered, rx) = mpsc::unbounded_channel();
        let sender = Self {
            script: Mutex::new(VecDeque::new()),
            otherwise: Ok(()),
            attempts: AtomicUsize::new(0),
            sent: Mutex::new(Vec::new()),
            gate: Some(Semaphore::new(0)),
            entered,
        };
        (Arc::new(sender), rx)
    }

    fn release(&self, attempts: usize) {
        self.gate
            .as_ref()
            .expect("gated sender")
            .add_permits(attempts);
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    fn sent(&self) -> Vec<usize> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl BatchSender for ScriptedSender {
    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let _ = self.entered.send(());
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.otherwise.clone());
        if answer.is_ok() {
            self.sent.lock().unwrap().push(batch.len());
        }
        answer.map_err(SendError::from)
    }
}

fn settings(change: impl FnOnce(&mut ExporterHelperSettings)) -> ExporterHelperSettings {
    let mut s = ExporterHelperSettings::default();
    s.retry_on_failure.initial_interval = ConfigDuration::from_secs(1);
    s.retry_on_failure.max_interval = ConfigDuration::from_secs(2);
    s.retry_on_failure.randomization_factor = 0.0;
    change(&mut s);
    s
}

async fn started(
    settings: ExporterHelperSettings,
    sender: Arc<impl BatchSender>,
) -> Arc<ExporterHelper> {
    let helper = Arc::new(ExporterHelper::new(
        &BuildContext::new(ComponentId::new("test", None)),
        settings,
        sender,
    ));
    helper.start().await.unwrap();
    helper
}

fn down() -> Outcome {
    Err(PipelineError::retryable("down"))
}

/// Lets spawned tasks run until the queue holds `used` (in its sizer unit).
async fn until_queue_holds(helper: &ExporterHelper, used: usize) {
    while helper.queue_usage().map(|(u, _)| u) != Some(used) {
        tokio::task::yield_now().await;
    }
}

fn spawn_consume(helper: &Arc<ExporterHelper>, records: usize) -> tokio::task::JoinHandle<Outcome> {
    let helper = helper.clone();
    tokio::spawn(async move { helper.consume(LogBatch::sample_audit(records)).await })
}

#[tokio::test(start_paused = true)]
async fn retries_until_the_send_succeeds() {
    let (sender, _) = ScriptedSender::new(vec![down(), down()], Ok(()));
    let helper = started(settings(|_| {}), sender.clone()).await;
    helper.consume(LogBatch::sample_audit(4)).await.unwrap();
    assert_eq!(sender.attempts(), 3);
    assert_eq!(sender.sent(), vec![4]);
    assert_eq!(helper.counters().sent_records(), 4);
    assert_eq!(helper.counters().failed_records(), 0);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let (sender, _) = ScriptedSender::new(vec![Err(PipelineError::permanent("bad data"))], Ok(()));
    let helper = started(settings(|_| {}), sender.clone()).await;
    let err = helper.consume(LogBatch::sample_audit(2)).await.unwrap_err();
    assert_eq!(err, PipelineError::permanent("bad data"));
    assert_eq!(sender.attempts(), 1);
    assert_eq!(helper.counters().failed_records(), 2);
}

#[tokio::test(start_paused = true)]
async fn disabled_retry_fails_on_the_first_error() {
    let (sender, _) = ScriptedSender::new(vec![], down());
    let helper = started(
        settings(|s| s.retry_on_failure.enabled = false),
        sender.clone(),
    )
    .await;
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert_eq!(err, PipelineError::retryable("down"));
    assert_eq!(sender.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_time_gives_up_with_a_retryable_error() {
    let (sender, _) = ScriptedSender::new(vec![], down());
    let helper = started(
        settings(|s| s.retry_on_failure.max_elapsed_time = Some(ConfigDuration::from_secs(10))),
        sender.clone(),
    )
    .await;
    let begin = Instant::now();
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Retryable { .. }), "{err:?}");
    assert!(err.message().contains("gave up"), "{err}");
    assert!(err.message().contains("last error: down"), "{err}");
    assert!(begin.elapsed() >= Duration::from_secs(10));
    assert!(sender.attempts() > 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_hint_replaces_the_backoff() {
    let hinted = Err(PipelineError::Retryable {
        message: "slow down".into(),
        retry_after: Some(Duration::from_secs(7)),
    });
    let (sender, _) = ScriptedSender::new(vec![hinted], Ok(()));
    let helper = started(
        settings(|s| s.retry_on_failure.initial_interval = ConfigDuration::from_millis(100)),
        sender.clone(),
    )
    .await;
    let begin = Instant::now();
    helper.consume(LogBatch::sample_audit(1)).await.unwrap();
    assert!(
        begin.elapsed() >= Duration::from_secs(7),
        "{:?}",
        begin.elapsed()
    );
    assert_eq!(sender.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_bounded_by_timeout() {
    let (sender, _) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration::from_secs(1);
            s.retry_on_failure.enabled = false;
        }),
        sender,
    )
    .await;
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Retryable { .. }), "{err:?}");
    assert!(err.message().contains("timed out after 1s"), "{err}");
}

#[tokio::test]
async fn wait_for_result_waits_for_the_export_outcome() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| s.timeout = ConfigDuration(Duration::ZERO)),
        sender.clone(),
    )
    .await;
    let consume = spawn_consume(&helper, 3);
    entered.recv().await.unwrap();
    tokio::task::yield_now().await;
    assert!(
        !consume.is_finished(),
        "acknowledged before the export finished"
    );
    sender.release(1);
    consume.await.unwrap().unwrap();
    assert_eq!(sender.sent(), vec![3]);
}

#[tokio::test]
async fn wait_for_result_passes_the_export_failure_to_the_caller() {
    let (sender, _) = ScriptedSender::new(vec![Err(PipelineError::permanent("rejected"))], Ok(()));
    let helper = started(settings(|_| {}), sender).await;
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert_eq!(err, PipelineError::permanent("rejected"));
}

#[tokio::test]
async fn without_wait_for_result_consume_returns_once_queued() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration(Duration::ZERO);
            s.sending_queue.wait_for_result = Some(false);
        }),
        sender.clone(),
    )
    .await;
    helper.consume(LogBatch::sample_audit(2)).await.unwrap();
    entered.recv().await.unwrap();
    assert!(sender.sent().is_empty());
    sender.release(1);
    helper
        .shutdown(Instant::now() + Duration::from_secs(60))
        .await;
    assert_eq!(sender.sent(), vec![2]);
}

#[tokio::test]
async fn a_full_queue_is_backpressure_with_a_retry_after_hint() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration(Duration::ZERO);
            s.sending_queue.queue_size = 1;
            s.sending_queue.num_consumers = 1;
            s.sending_queue.when_full = WhenFull::Reject;
        }),
        sender.clone(),
    )
    .await;
    let first = spawn_consume(&helper, 1);
    entered.recv().await.unwrap();
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Backpressure { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.message().contains("queue is full"), "{err}");
    assert_eq!(helper.counters().enqueue_failed_records(), 1);
    sender.release(1);
    first.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_when_full_block_a_push_waits_for_room() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration(Duration::ZERO);
            s.sending_queue.queue_size = 1;
            s.sending_queue.num_consumers = 1;
        }),
        sender.clone(),
    )
    .await;
    let first = spawn_consume(&helper, 1);
    entered.recv().await.unwrap();
    let second = spawn_consume(&helper, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second batch waits for room");
    assert_eq!(helper.counters().enqueue_failed_records(), 0);
    sender.release(2);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(sender.sent(), vec![1, 2]);
}

#[tokio::test]
async fn items_sizer_counts_records() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration(Duration::ZERO);
            s.sending_queue.sizer = Sizer::Items;
            s.sending_queue.queue_size = 5;
            s.sending_queue.num_consumers = 1;
            s.sending_queue.when_full = WhenFull::Reject;
        }),
        sender.clone(),
    )
    .await;
    let first = spawn_consume(&helper, 3);
    entered.recv().await.unwrap();
    assert_eq!(helper.queue_usage(), Some((3, 5)));
    let err = helper.consume(LogBatch::sample_audit(3)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Backpressure { .. }), "{err:?}");
    sender.release(1);
    first.await.unwrap().unwrap();
    assert_eq!(helper.queue_usage(), Some((0, 5)));
}

#[tokio::test]
async fn a_batch_larger_than_the_queue_is_permanent_and_names_the_sizes() {
    let (sender, _) = ScriptedSender::new(vec![], Ok(()));
    let helper = started(
        settings(|s| {
            s.sending_queue.sizer = Sizer::Items;
            s.sending_queue.queue_size = 5;
        }),
        sender,
    )
    .await;
    let err = helper.consume(LogBatch::sample_audit(6)).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.message().contains("(6 items)"), "{err}");
    assert!(err.message().contains("queue_size: 5 items"), "{err}");
}

#[tokio::test]
async fn bytes_sizer_measures_the_protobuf_encoding() {
    let batch = LogBatch::sample_audit(2);
    let bytes = batch.encoded_len();
    assert_eq!(Sizer::Bytes.size_of(&batch), bytes);
    assert_eq!(Sizer::Items.size_of(&batch), 2);
    assert_eq!(Sizer::Requests.size_of(&batch), 1);
    let (sender, _) = ScriptedSender::new(vec![], Ok(()));
    let helper = started(
        settings(|s| {
            s.sending_queue.sizer = Sizer::Bytes;
            s.sending_queue.queue_size = bytes - 1;
        }),
        sender,
    )
    .await;
    let err = helper.consume(batch).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.message().contains(&format!("({bytes} bytes)")), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_disabled_queue_sends_inline() {
    let (sender, _) = ScriptedSender::new(vec![down()], Ok(()));
    let helper = started(
        settings(|s| s.sending_queue.enabled = false),
        sender.clone(),
    )
    .await;
    helper.consume(LogBatch::sample_audit(2)).await.unwrap();
    assert_eq!(sender.attempts(), 2);
    assert_eq!(helper.queue_usage(), None);
}

#[tokio::test]
async fn consume_before_start_is_refused() {
    let (sender, _) = ScriptedSender::new(vec![], Ok(()));
    let helper = ExporterHelper::new(
        &BuildContext::new(ComponentId::new("file", Some("x"))),
        settings(|_| {}),
        sender,
    );
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert_eq!(
        err,
        PipelineError::retryable("exporter file/x is not running")
    );
}

#[tokio::test]
async fn consume_after_shutdown_is_refused() {
    let (sender, _) = ScriptedSender::new(vec![], Ok(()));
    let helper = started(settings(|_| {}), sender).await;
    helper
        .shutdown(Instant::now() + Duration::from_secs(1))
        .await;
    let err = helper.consume(LogBatch::sample_audit(1)).await.unwrap_err();
    assert!(err.message().contains("is not running"), "{err}");
}

#[tokio::test]
async fn shutdown_drains_the_queue_before_stopping() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration(Duration::ZERO);
            s.sending_queue.num_consumers = 1;
        }),
        sender.clone(),
    )
    .await;
    let consumes: Vec<_> = (1..=3).map(|n| spawn_consume(&helper, n)).collect();
    entered.recv().await.unwrap();
    until_queue_holds(&helper, 3).await;
    let shutdown = {
        let helper = helper.clone();
        tokio::spawn(async move {
            helper
                .shutdown(Instant::now() + Duration::from_secs(3600))
                .await
        })
    };
    sender.release(3);
    shutdown.await.unwrap();
    for consume in consumes {
        consume.await.unwrap().unwrap();
    }
    let mut sent = sender.sent();
    sent.sort();
    assert_eq!(sent, vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_fails_the_batches_left() {
    let (sender, mut entered) = ScriptedSender::gated();
    let helper = started(
        settings(|s| {
            s.timeout = ConfigDuration(Duration::ZERO);
            s.sending_queue.num_consumers = 1;
        }),
        sender.clone(),
    )
    .await;
    let in_flight = spawn_consume(&helper, 1);
    let queued = spawn_consume(&helper, 2);
    entered.recv().await.unwrap();
    until_queue_holds(&helper, 2).await;
    helper
        .shutdown(Instant::now() + Duration::from_secs(1))
        .await;
    for consume in [in_flight, queued] {
        let err = consume.await.unwrap().unwrap_err();
        assert!(matches!(err, PipelineError::Retryable { .. }), "{err:?}");
        assert!(err.message().contains("shutting down"), "{err}");
    }
    assert_eq!(sender.attempts(), 1);
    assert!(sender.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_cuts_backoff_short() {
    let (sender, _) = ScriptedSender::new(vec![], down());
    let helper = started(
        settings(|s| {
            s.retry_on_failure.initial_interval = ConfigDuration::from_secs(600);
            s.retry_on_failure.max_interval = ConfigDuration::from_secs(600);
        }),
        sender,
    )
    .await;
    let consume = spawn_consume(&helper, 1);
    until_queue_holds(&helper, 1).await;
    let begin = Instant::now();
    helper.shutdown(begin + Duration::from_secs(5)).await;
    let err = consume.await.unwrap().unwrap_err();
    assert!(err.message().contains("shutting down"), "{err}");
    assert!(begin.elapsed() < Duration::from_secs(600));
}

mod validation {
    use super::*;
    use crate::config::ConfigError;

    fn parse(json: serde_json::Value) -> Result<ExporterHelperSettings, ConfigError> {
        parse_component_config(&json)
    }

    fn error_path(json: serde_json::Value) -> String {
        parse(json).unwrap_err().path
    }

    #[test]
    fn defaults_are_the_collectors_except_wait_for_result() {
        let s = parse(serde_json::json!(null)).unwrap();
        assert_eq!(s, ExporterHelperSettings::default());
        assert_eq!(s.timeout, ConfigDuration::from_secs(5));
        assert!(s.retry_on_failure.enabled);
        assert_eq!(
            s.retry_on_failure.initial_interval,
            ConfigDuration::from_secs(5)
        );
        assert_eq!(
            s.retry_on_failure.max_interval,
            ConfigDuration::from_secs(30)
        );
        assert_eq!(s.retry_on_failure.max_elapsed_time, None);
        assert_eq!(
            s.retry_on_failure.max_elapsed(false),
            ConfigDuration::from_secs(300)
        );
        assert_eq!(s.retry_on_failure.multiplier, 1.5);
        assert_eq!(s.retry_on_failure.randomization_factor, 0.5);
        assert!(s.sending_queue.enabled);
        assert_eq!(s.sending_queue.num_consumers, 10);
        assert_eq!(s.sending_queue.queue_size, 1000);
        assert_eq!(s.sending_queue.sizer, Sizer::Requests);
        assert!(s.sending_queue.waits_for_result());
        assert_eq!(s.sending_queue.storage, None);
        assert_eq!(s.sending_queue.when_full, WhenFull::Block);
    }

    #[test]
    fn a_persistent_queue_retries_forever_and_acknowledges_once_stored_unless_told() {
        let s =
            parse(serde_json::json!({"sending_queue": {"storage": "/var/lib/auditcol"}})).unwrap();
        assert_eq!(
            s.retry_on_failure.max_elapsed(true),
            ConfigDuration::from_secs(0)
        );
        assert!(!s.sending_queue.waits_for_result());
        assert_eq!(s.sending_queue.max_bytes(), 1024 << 20);
        let s = parse(serde_json::json!({
            "sending_queue": {"storage": "/q", "wait_for_result": true, "max_size_mib": 5},
            "retry_on_failure": {"max_elapsed_time": "1h"},
        }))
        .unwrap();
        assert!(s.sending_queue.waits_for_result());
        assert_eq!(s.sending_queue.max_bytes(), 5 << 20);
        assert_eq!(
            s.retry_on_failure.max_elapsed(true),
            ConfigDuration::from_secs(3600)
        );
    }

    #[test]
    fn multiplier_below_one_is_rejected() {
        let json = serde_json::json!({"retry_on_failure": {"multiplier": 0.5}});
        assert_eq!(error_path(json), "retry_on_failure.multiplier");
    }

    #[test]
    fn randomization_factor_outside_zero_one_is_rejected() {
        let json = serde_json::json!({"retry_on_failure": {"randomization_factor": 1.5}});
        assert_eq!(error_path(json), "retry_on_failure.randomization_factor");
    }

    #[test]
    fn initial_interval_longer_than_max_interval_is_rejected() {
        let json = serde_json::json!({"retry_on_failure": {"initial_interval": "1m", "max_interval": "30s"}});
        assert_eq!(error_path(json), "retry_on_failure.initial_interval");
    }

    #[test]
    fn zero_consumers_or_zero_queue_size_is_rejected() {
        let json = serde_json::json!({"sending_queue": {"num_consumers": 0}});
        assert_eq!(error_path(json), "sending_queue.num_consumers");
        let json = serde_json::json!({"sending_queue": {"queue_size": 0}});
        assert_eq!(error_path(json), "sending_queue.queue_size");
    }

    #[test]
    fn persistent_queue_keys_are_checked() {
        let err = parse(serde_json::json!({"sending_queue": {"storage": ""}})).unwrap_err();
        assert_eq!(err.path, "sending_queue.storage");
        let err = parse(serde_json::json!({"sending_queue": {"max_size_mib": 10}})).unwrap_err();
        assert_eq!(err.path, "sending_queue.max_size_mib");
        let err = parse(serde_json::json!({"sending_queue": {"storage": "/q", "max_size_mib": 0}}))
            .unwrap_err();
        assert_eq!(err.path, "sending_queue.max_size_mib");
        let err = parse(serde_json::json!({"sending_queue": {"storage": "/q", "enabled": false}}))
            .unwrap_err();
        assert_eq!(err.path, "sending_queue.storage");
        let err = parse(serde_json::json!({"sending_queue": {"when_full": "drop"}})).unwrap_err();
        assert_eq!(err.path, "sending_queue.when_full");
    }

    #[test]
    fn unknown_sizer_names_the_allowed_ones() {
        let err = parse(serde_json::json!({"sending_queue": {"sizer": "records"}})).unwrap_err();
        assert_eq!(err.path, "sending_queue.sizer");
        assert!(
            err.message.contains("`requests`, `items`, `bytes`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let err = parse(serde_json::json!({"retry_on_failure": {"max_retries": 3}})).unwrap_err();
        assert_eq!(err.path, "retry_on_failure.max_retries");
    }
}

/// A sender that delivers record by record: records are told apart by their
/// event time (`sample_audit` numbers them), and `answer(attempt, n)` says
/// what becomes of record `n` at that attempt: delivered (`None`), or an error.
struct RecordSender {
    answer: Box<dyn Fn(usize, u64) -> Option<PipelineError> + Send + Sync>,
    attempts: AtomicUsize,
    /// Record numbers in the order they were delivered.
    delivered: Mutex<Vec<u64>>,
    /// The sizes of the batches attempted.
    attempted: Mutex<Vec<usize>>,
}

impl RecordSender {
    fn new(
        answer: impl Fn(usize, u64) -> Option<PipelineError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            answer: Box::new(answer),
            attempts: AtomicUsize::new(0),
            delivered: Mutex::new(Vec::new()),
            attempted: Mutex::new(Vec::new()),
        })
    }

    fn delivered(&self) -> Vec<u64> {
        self.delivered.lock().unwrap().clone()
    }
}

/// The number `sample_audit` gave a record.
fn record_number(record: crate::RecordRef<'_>) -> u64 {
    record.time_unix_nano() - 1_714_557_600_000_000_000
}

#[async_trait]
impl BatchSender for RecordSender {
    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        self.attempted.lock().unwrap().push(batch.len());
        let mut failure = PartialFailure::default();
        let outcomes: Vec<Option<PipelineError>> = batch
            .records()
            .map(|r| (self.answer)(attempt, record_number(r)))
            .collect();
        for (record, outcome) in batch.records().zip(&outcomes) {
            if outcome.is_none() {
                self.delivered.lock().unwrap().push(record_number(record));
            }
        }
        for (n, outcome) in outcomes.into_iter().enumerate() {
            if let Some(error) = outcome {
                let mut one = batch.clone();
                let mut i = 0;
                one.retain(|_| {
                    i += 1;
                    i - 1 == n
                });
                failure.retry(one, error);
            }
        }
        failure.into_result()
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_partial_failure_only_the_remaining_records_are_sent_again() {
    // Records 1 and 3 fail at the first attempt; all succeed after.
    let sender = RecordSender::new(|attempt, n| {
        (attempt == 0 && n % 2 == 1).then(|| PipelineError::retryable("busy"))
    });
    let helper = started(settings(|_| {}), sender.clone()).await;
    helper.consume(LogBatch::sample_audit(5)).await.unwrap();
    assert_eq!(*sender.attempted.lock().unwrap(), vec![5, 2]);
    assert_eq!(sender.delivered(), vec![0, 2, 4, 1, 3], "each record once");
    assert_eq!(helper.counters().sent_records(), 5);
    assert_eq!(helper.counters().failed_records(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_partial_failure_honours_the_retry_after_of_what_remains() {
    let sender = RecordSender::new(|attempt, n| {
        (attempt == 0 && n == 0).then(|| PipelineError::Retryable {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(9)),
        })
    });
    let helper = started(settings(|_| {}), sender.clone()).await;
    let begin = Instant::now();
    helper.consume(LogBatch::sample_audit(3)).await.unwrap();
    assert!(
        begin.elapsed() >= Duration::from_secs(9),
        "{:?}",
        begin.elapsed()
    );
    assert_eq!(sender.delivered(), vec![1, 2, 0]);
}

#[tokio::test(start_paused = true)]
async fn records_refused_for_good_fail_the_batch_but_are_not_sent_again() {
    // Record 1 is refused for good; record 2 fails once.
    let sender = RecordSender::new(|attempt, n| match n {
        1 => Some(PipelineError::permanent("HTTP 400: bad event")),
        2 if attempt == 0 => Some(PipelineError::retryable("busy")),
        _ => None,
    });
    let helper = started(settings(|_| {}), sender.clone()).await;
    let err = helper.consume(LogBatch::sample_audit(4)).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(
        err.message(),
        "exporter test: 1 of 4 records were refused for good (the others were delivered): \
         HTTP 400: bad event"
    );
    assert_eq!(*sender.attempted.lock().unwrap(), vec![4, 1]);
    assert_eq!(sender.delivered(), vec![0, 3, 2]);
    assert_eq!(helper.counters().sent_records(), 3);
    assert_eq!(helper.counters().failed_records(), 1);
}

#[tokio::test(start_paused = true)]
async fn giving_up_on_what_remains_is_retryable_and_counts_only_it() {
    let sender = RecordSender::new(|_, n| (n == 0).then(|| PipelineError::retryable("down")));
    let helper = started(
        settings(|s| s.retry_on_failure.max_elapsed_time = Some(ConfigDuration::from_secs(5))),
        sender.clone(),
    )
    .await;
    let err = helper.consume(LogBatch::sample_audit(3)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Retryable { .. }), "{err:?}");
    assert!(
        err.message().starts_with(
            "exporter test: 1 of 3 records were not delivered: exporter test: gave up"
        ),
        "{err}"
    );
    assert_eq!(helper.counters().sent_records(), 2);
    assert_eq!(helper.counters().failed_records(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_final_error_names_what_remains_and_what_was_refused() {
    let sender = RecordSender::new(|_, n| match n {
        0 => Some(PipelineError::permanent("refused")),
        1 => Some(PipelineError::retryable("busy")),
        _ => None,
    });
    let helper = started(
        settings(|s| s.retry_on_failure.max_elapsed_time = Some(ConfigDuration::from_secs(5))),
        sender.clone(),
    )
    .await;
    let err = helper.consume(LogBatch::sample_audit(3)).await.unwrap_err();
    assert!(matches!(err, PipelineError::Retryable { .. }), "{err:?}");
    assert!(
        err.message()
            .starts_with("exporter test: 1 of 3 records were not delivered: "),
        "{err}"
    );
    assert!(
        err.message()
            .ends_with("; 1 more were refused for good: refused"),
        "{err}"
    );
    assert_eq!(helper.counters().failed_records(), 2);
    assert_eq!(helper.counters().sent_records(), 1);
}

#[tokio::test]
async fn a_persistent_queue_acknowledges_once_stored_and_sends_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let persistent = |s: &mut ExporterHelperSettings| {
        s.sending_queue.storage = Some(storage.clone());
        s.sending_queue.num_consumers = 1;
    };
    // The destination is down: batches are acknowledged once on disk.
    let (down_sender, _) = ScriptedSender::new(vec![], down());
    let helper = started(settings(persistent), down_sender.clone()).await;
    helper.consume(LogBatch::sample_audit(2)).await.unwrap();
    helper.consume(LogBatch::sample_audit(3)).await.unwrap();
    helper
        .shutdown(Instant::now() + Duration::from_millis(200))
        .await;
    drop(helper);
    assert!(down_sender.sent().is_empty());

    // The next start sends them, in order.
    let (up_sender, _) = ScriptedSender::new(vec![], Ok(()));
    let helper = started(settings(persistent), up_sender.clone()).await;
    while up_sender.sent().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up_sender.sent(), vec![2, 3]);
    helper
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    drop(helper);

    // Sent and acknowledged: nothing comes back a third time.
    let (third, _) = ScriptedSender::new(vec![], Ok(()));
    let helper = started(settings(persistent), third.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(third.sent().is_empty());
    helper
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn two_exporters_on_one_storage_keep_their_own_namespaces_and_a_second_collector_is_refused()
{
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let make = |name: &str| {
        let (sender, _) = ScriptedSender::new(vec![], Ok(()));
        let mut s = ExporterHelperSettings::default();
        s.sending_queue.storage = Some(storage.clone());
        ExporterHelper::new(
            &BuildContext::new(ComponentId::new("test", Some(name))),
            s,
            sender,
        )
    };
    let a = make("a");
    let b = make("b");
    a.start().await.unwrap();
    b.start().await.unwrap();
    assert!(dir.path().join("test~a").is_dir());
    assert!(dir.path().join("test~b").is_dir());
    let again = make("a");
    let err = again.start().await.unwrap_err();
    assert!(err.0.contains("in use by another process"), "{err}");
    a.shutdown(Instant::now()).await;
    b.shutdown(Instant::now()).await;
}

#[tokio::test]
async fn the_queue_and_its_fsyncs_are_reported_at_scrape_time() {
    use crate::telemetry::{MetricsLevel, Telemetry};
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let telemetry = Telemetry::new(MetricsLevel::Normal);
    let ctx = BuildContext::new(ComponentId::new("file", Some("audit")))
        .with_telemetry(telemetry.clone());
    let (sender, _) = ScriptedSender::new(vec![], down());
    let helper = ExporterHelper::new(
        &ctx,
        settings(|s| {
            s.sending_queue.storage = Some(storage.clone());
            s.sending_queue.queue_size = 10;
        }),
        sender,
    );
    let queue = [("data_type", "logs"), ("exporter", "file/audit")];
    // No queue before start: nothing to report.
    assert_eq!(
        telemetry.sample("otelcol_exporter_queue_size", &queue),
        None
    );
    helper.start().await.unwrap();
    // Acknowledged once fsynced; the destination is down, so it stays queued.
    helper.consume(LogBatch::sample_audit(2)).await.unwrap();
    assert_eq!(
        telemetry.sample("otelcol_exporter_queue_size", &queue),
        Some(1.0)
    );
    assert_eq!(
        telemetry.sample("otelcol_exporter_queue_capacity", &queue),
        Some(10.0)
    );
    let fsyncs = telemetry
        .sample(
            "auditcol_exporter_persistent_queue_fsyncs_total",
            &[("exporter", "file/audit")],
        )
        .unwrap();
    assert!(fsyncs >= 1.0, "{fsyncs}");
    helper
        .shutdown(Instant::now() + Duration::from_millis(100))
        .await;
}
