//! The batch processor: one batching task per instance, one task per flush.
//!
//! ```text
//! consume(batch) ──(batch, ack)──> [intake, bounded] ──> batching task
//!      ▲                                                 │ merge while pending < send_batch_size
//!      │                                                 │ and the timer has not fired
//!      │                                                 ▼
//!      └──────── ack: downstream result ◀──── flush task (≤ 64 at once): pieces ≤ send_batch_max_size
//! ```
//!
//! Nothing is acknowledged early: a caller's `consume` completes when the
//! flush holding its records has been accepted downstream, with the
//! downstream result. A slow exporter therefore slows callers down (the
//! bounded intake fills, then `consume` waits for room) instead of growing
//! memory.

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auditcol_core::component::{Component, ComponentId, Processor, StartError};
use auditcol_core::{LogBatch, LogsConsumer, PipelineError, SharedConsumer};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::BatchConfig;

/// How many flushes may be in flight at once per processor. Flushes run as
/// their own tasks so that a slow exporter does not stop accumulation; this
/// bound keeps memory finite: once it is reached, the batching task waits,
/// the intake fills and callers wait for room.
pub const MAX_CONCURRENT_FLUSHES: usize = 64;

/// How many incoming batches may wait for the batching task. Small on
/// purpose: the task only merges, so a full intake means flushes are
/// saturated and callers should feel it.
pub const INTAKE_CAPACITY: usize = 64;

/// Completes one caller with the result of the flush its records went into.
type Ack = oneshot::Sender<Result<(), PipelineError>>;

/// Merges batches from concurrent callers and sends them downstream when
/// `send_batch_size` records are pending or `timeout` has passed since the
/// first of them arrived.
///
/// Unlike the OpenTelemetry Collector's batch processor, it never
/// acknowledges early: every caller waits for the downstream result of the
/// flush that carried its records, so a crash cannot lose an acknowledged
/// event.
pub struct BatchProcessor {
    id: ComponentId,
    config: BatchConfig,
    next: SharedConsumer,
    running: Mutex<Option<Running>>,
}

/// What exists between `start` and `shutdown`.
struct Running {
    intake: mpsc::Sender<(LogBatch, Ack)>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl BatchProcessor {
    /// A stopped processor; [`Component::start`] spawns its batching task.
    /// `config` must be valid (see [`auditcol_core::config::Validate`]).
    pub fn new(id: ComponentId, config: BatchConfig, next: SharedConsumer) -> Self {
        Self {
            id,
            config,
            next,
            running: Mutex::new(None),
        }
    }

    /// The settings this processor runs with.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        // The lock only guards swapping the state; a panic elsewhere cannot
        // leave it half-updated, so a poisoned lock is still usable.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn not_running(&self) -> PipelineError {
        PipelineError::retryable(format!("batch processor {} is not running", self.id))
    }
}

#[async_trait]
impl Component for BatchProcessor {
    async fn start(&self) -> Result<(), StartError> {
        let mut running = self.running();
        if running.is_some() {
            return Err(StartError(format!(
                "batch processor {} is already running",
                self.id
            )));
        }
        let (intake, requests) = mpsc::channel(INTAKE_CAPACITY);
        let (stop, stopped) = oneshot::channel();
        let batcher = Batcher {
            id: self.id.to_string(),
            send_batch_size: self.config.send_batch_size,
            send_batch_max_size: self.config.send_batch_max_size,
            timeout: self.config.timeout.0,
            flush_when_idle: self.config.flush_when_idle,
            next: self.next.clone(),
            pending: LogBatch::new(),
            waiters: Vec::new(),
            flush_at: None,
            flushes: JoinSet::new(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_FLUSHES)),
        };
        let task = tokio::spawn(batcher.run(requests, stopped));
        *running = Some(Running { intake, stop, task });
        Ok(())
    }

    /// Stops accepting, flushes what is pending and waits for the flushes in
    /// flight. At `deadline` the rest is abandoned: its callers get a
    /// retryable "shutting down" error.
    async fn shutdown(&self, deadline: Instant) {
        let Some(Running { intake, stop, task }) = self.running().take() else {
            return;
        };
        drop(intake);
        let _ = stop.send(());
        let mut task = task;
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(
                processor = %self.id,
                "shutdown deadline reached with batches still in flight: their senders are told to retry"
            );
            // Dropping the batching task drops its flush tasks and with them
            // the callers' acks, which tells each caller to retry.
            task.abort();
            let _ = task.await;
        }
    }
}

#[async_trait]
impl LogsConsumer for BatchProcessor {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let intake = self.running().as_ref().map(|r| r.intake.clone());
        let Some(intake) = intake else {
            return Err(self.not_running());
        };
        let (ack, acked) = oneshot::channel();
        // Waits for room when the intake is full: that is the backpressure.
        if intake.send((batch, ack)).await.is_err() {
            return Err(self.not_running());
        }
        drop(intake);
        acked.await.unwrap_or_else(|_| {
            Err(PipelineError::retryable(format!(
                "batch processor {} is shutting down: the batch was not delivered downstream before it stopped",
                self.id
            )))
        })
    }
}

impl Processor for BatchProcessor {}

/// The batching task's state.
struct Batcher {
    id: String,
    send_batch_size: usize,
    send_batch_max_size: usize,
    timeout: Duration,
    flush_when_idle: bool,
    next: SharedConsumer,
    /// Records merged so far, and the callers they belong to.
    pending: LogBatch,
    waiters: Vec<Ack>,
    /// When the pending records must go out: `timeout` after the first arrived.
    flush_at: Option<Instant>,
    flushes: JoinSet<()>,
    permits: Arc<Semaphore>,
}

impl Batcher {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<(LogBatch, Ack)>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            tokio::select! {
                // Stop first so shutdown is prompt; the timer before intake so a
                // steady stream below send_batch_size cannot starve it.
                biased;
                _ = &mut stop => break,
                () = tokio::time::sleep_until(self.flush_at.unwrap_or_else(Instant::now)),
                    if self.flush_at.is_some() => self.flush().await,
                Some(done) = self.flushes.join_next(), if !self.flushes.is_empty() => {
                    self.report(done);
                    if self.idle() {
                        self.flush().await;
                    }
                }
                request = requests.recv() => {
                    let Some(request) = request else { break };
                    self.add(request);
                    if self.timeout.is_zero() {
                        // No time trigger: send now, together with whatever
                        // is already waiting.
                        while self.pending.len() < self.send_batch_size
                            && let Ok(request) = requests.try_recv()
                        {
                            self.add(request);
                        }
                        self.flush().await;
                    } else if self.pending.len() >= self.send_batch_size || self.idle() {
                        self.flush().await;
                    }
                }
            }
        }
        // Shutting down: refuse new batches, but take those already queued.
        requests.close();
        while let Some(request) = requests.recv().await {
            self.add(request);
        }
        self.flush().await;
        while let Some(done) = self.flushes.join_next().await {
            self.report(done);
        }
    }

    /// Group commit: nothing is being exported, so waiting longer would only
    /// delay callers who are already waiting for their acknowledgement.
    fn idle(&self) -> bool {
        self.flush_when_idle && self.flushes.is_empty() && !self.waiters.is_empty()
    }

    fn add(&mut self, (batch, ack): (LogBatch, Ack)) {
        if self.waiters.is_empty() && !self.timeout.is_zero() {
            self.flush_at = Some(Instant::now() + self.timeout);
        }
        self.pending.merge(batch);
        self.waiters.push(ack);
    }

    /// Hands everything pending to a new flush task.
    async fn flush(&mut self) {
        self.flush_at = None;
        if self.waiters.is_empty() {
            return;
        }
        let batch = mem::take(&mut self.pending);
        let waiters = mem::take(&mut self.waiters);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the flush semaphore is never closed");
        let next = Arc::clone(&self.next);
        let max = self.send_batch_max_size;
        self.flushes.spawn(async move {
            let _permit = permit;
            let result = send_in_pieces(next.as_ref(), batch, max).await;
            for waiter in waiters {
                // A caller that gave up waiting no longer needs the answer.
                let _ = waiter.send(result.clone());
            }
        });
    }

    fn report(&self, done: Result<(), tokio::task::JoinError>) {
        if let Err(e) = done
            && e.is_panic()
        {
            tracing::error!(processor = %self.id, "a flush panicked; its senders are told to retry");
        }
    }
}

/// Sends `batch` in pieces of at most `max` records (0 = whole), in order,
/// one after another, trying every piece. The result is `Ok` only if every
/// piece was accepted, otherwise the most severe failure.
async fn send_in_pieces(
    next: &dyn LogsConsumer,
    batch: LogBatch,
    max: usize,
) -> Result<(), PipelineError> {
    let mut result: Result<(), PipelineError> = Ok(());
    for piece in batch.split(max) {
        if let Err(e) = next.consume(piece).await {
            result = Err(match result {
                Ok(()) => e,
                Err(earlier) => earlier.most_severe(e),
            });
        }
    }
    result
}

#[cfg(test)]
mod tests;
