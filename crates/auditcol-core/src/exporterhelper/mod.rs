//! The exporter helper: timeout, retry with backoff, and the sending queue.
//!
//! Every exporter wraps one. The exporter implements [`BatchSender`] — how
//! to send one batch and whether a failure is retryable — and the helper
//! does the rest, once for all exporters:
//!
//! ```text
//! consume ─> sending_queue ─> num_consumers workers ─> retry(timeout(send))
//!    └─ waits for the export outcome when wait_for_result (default)
//! ```
//!
//! With `sending_queue.enabled: false`, `consume` runs `retry(timeout(send))`
//! itself. Permanent errors are never retried. At shutdown the helper stops
//! accepting, lets the workers drain the queue until the deadline, then
//! abandons what is left and fails its waiting callers with a retryable
//! error (their clients will send again).

mod partial;
mod persistent;
mod queue;
mod retry;
mod settings;
#[cfg(test)]
mod tests;

pub use partial::{PartialFailure, SendError};
pub use persistent::{OpenError, PersistentQueue, Recovery, namespace};
pub use queue::{MemoryQueue, PushError, QueueId, QueueStorage, QueuedBatch, Ticket};
pub use settings::{
    ExporterHelperSettings, QueueSettings, RetrySettings, Sizer, WhenFull, default_timeout,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use futures::FutureExt;

use crate::component::{
    BuildContext, Component, ComponentId, Connectivity, Exporter, Leftover, StartError,
};
use crate::config::ConfigDuration;
use crate::telemetry::{Counter, ExporterTelemetry};
use crate::{LogBatch, LogsConsumer, PipelineError};

use retry::Backoff;

/// The retry-after hint given to callers when the queue is full.
const QUEUE_FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// With `when_full: block`, how often a waiting push looks again even if
/// no ack woke it (room on disk frees when a segment is deleted).
const ROOM_POLL: Duration = Duration::from_millis(100);

/// At most this many `audit.id`s of a dropped batch go into its log line.
const LOGGED_IDS: usize = 20;

/// The `audit.id`s of `batch`, for a log line about it: the first
/// [`LOGGED_IDS`], then how many more.
pub fn audit_ids(batch: &LogBatch) -> String {
    let ids: Vec<&str> = batch
        .records()
        .take(LOGGED_IDS)
        .map(|r| r.audit_id().unwrap_or("-"))
        .collect();
    let more = batch.len().saturating_sub(LOGGED_IDS);
    let mut text = ids.join(",");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// What an exporter implements: sending one batch.
///
/// Return [`PipelineError::Permanent`] for failures that sending again can
/// never fix (the destination rejects the data), and `Retryable` (with a
/// retry-after hint when the destination gives one) otherwise; a
/// `PipelineError` converts into [`SendError::Batch`]. A sender that learns
/// record by record what was delivered answers [`SendError::Partial`], and
/// only the records that remain are sent again. Do not retry, queue or time
/// out inside: the helper does.
#[async_trait]
pub trait BatchSender: Send + Sync + 'static {
    /// Sends `batch` once.
    async fn send(&self, batch: &LogBatch) -> Result<(), SendError>;

    /// Acquires resources (connections, files); called before any `send`.
    async fn start(&self) -> Result<(), StartError> {
        Ok(())
    }

    /// Lets go of resources; called after the last `send`.
    async fn shutdown(&self) {}

    /// What [`Component::check_connectivity`] answers for the exporter:
    /// whether the destination answers. Called without `start`.
    async fn check_connectivity(&self) -> Connectivity {
        Connectivity::NotApplicable
    }
}

/// Counts of log records by outcome: the Collector's
/// `otelcol_exporter_sent_log_records`, `_send_failed_log_records` and
/// `_enqueue_failed_log_records` (see [`crate::telemetry`]).
pub struct ExporterCounters {
    sent: Counter,
    failed: Counter,
    enqueue_failed: Counter,
}

impl ExporterCounters {
    fn new(telemetry: ExporterTelemetry) -> Self {
        Self {
            sent: telemetry.sent,
            failed: telemetry.send_failed,
            enqueue_failed: telemetry.enqueue_failed,
        }
    }

    /// Records exported successfully.
    pub fn sent_records(&self) -> u64 {
        self.sent.get()
    }

    /// Records whose export failed for good (permanent error, retries
    /// exhausted, abandoned at shutdown).
    pub fn failed_records(&self) -> u64 {
        self.failed.get()
    }

    /// Records refused by the sending queue (full, too large, closed).
    pub fn enqueue_failed_records(&self) -> u64 {
        self.enqueue_failed.get()
    }

    fn add(counter: &Counter, records: usize) {
        if records > 0 {
            counter.inc_by(records as u64);
        }
    }
}

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

/// An exporter made of a [`BatchSender`] plus timeout, retry and queue.
pub struct ExporterHelper {
    inner: Arc<Inner>,
}

type Outcome = Result<(), PipelineError>;

struct Inner {
    id: ComponentId,
    settings: ExporterHelperSettings,
    sender: Arc<dyn BatchSender>,
    state: AtomicU8,
    /// Created at start: a persistent storage opens its files there.
    queue: OnceLock<Arc<dyn QueueStorage>>,
    /// The same queue when it is persistent, for its figures.
    persistent: OnceLock<Arc<PersistentQueue>>,
    /// Callers waiting for the outcome of their queued batch, by ticket.
    waiters: Mutex<HashMap<Ticket, oneshot::Sender<Outcome>>>,
    next_ticket: AtomicU64,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Fired at the shutdown deadline: abandons sends and backoff sleeps.
    abort: CancellationToken,
    /// Told when a worker acknowledges a batch: room in the queue.
    room: Notify,
    /// Inline (queue disabled) sends in progress, for shutdown to wait on.
    inline_sends: AtomicUsize,
    inline_idle: Notify,
    counters: ExporterCounters,
    /// Records abandoned at the shutdown deadline, by what became of them.
    left_refused: AtomicU64,
    left_lost: AtomicU64,
    /// Set at shutdown: batches left in the persistent queue.
    left_kept: AtomicU64,
}

/// Records of one batch refused for good along the way, by partial failures.
#[derive(Default)]
struct Refused {
    records: usize,
    first: Option<PipelineError>,
}

impl Refused {
    fn add(&mut self, records: usize, error: Option<PipelineError>) {
        if records == 0 {
            return;
        }
        self.records += records;
        if self.first.is_none() {
            self.first = error;
        }
    }

    /// The batch's outcome and failed-record count, given what became of
    /// the records not refused: delivered (`None`), or `failed` records with
    /// an error.
    fn outcome(
        self,
        id: &ComponentId,
        total: usize,
        failed: Option<(usize, PipelineError)>,
    ) -> (Outcome, usize) {
        let refused = self.records;
        let reason = |e: &Option<PipelineError>| {
            e.as_ref()
                .map_or("refused by the destination", |e| e.message())
                .to_owned()
        };
        match failed {
            // Nothing was delivered or refused apart: the error as it came.
            Some((failed, error)) if refused == 0 && failed == total => (Err(error), total),
            None if refused == 0 => (Ok(()), 0),
            None => (
                Err(PipelineError::permanent(format!(
                    "exporter {id}: {refused} of {total} records were refused for good \
                     (the others were delivered): {}",
                    reason(&self.first)
                ))),
                refused,
            ),
            Some((failed, error)) => {
                let mut message = format!(
                    "exporter {id}: {failed} of {total} records were not delivered: {}",
                    error.message()
                );
                if refused > 0 {
                    message.push_str(&format!(
                        "; {refused} more were refused for good: {}",
                        reason(&self.first)
                    ));
                }
                // Retryable stays retryable: sending the batch again may
                // deliver what remains (at-least-once beats loss).
                let error = match error {
                    PipelineError::Permanent { .. } => PipelineError::permanent(message),
                    PipelineError::Retryable { retry_after, .. }
                    | PipelineError::Backpressure { retry_after, .. } => PipelineError::Retryable {
                        message,
                        retry_after,
                    },
                };
                (Err(error), failed + refused)
            }
        }
    }
}

impl ExporterHelper {
    /// Wraps `sender` for the exporter `ctx.id`, counting what it sends in
    /// `ctx.telemetry` (the queue's fill level is read at every scrape). No
    /// side effect: the queue and workers come at start.
    pub fn new(
        ctx: &BuildContext,
        settings: ExporterHelperSettings,
        sender: Arc<dyn BatchSender>,
    ) -> Self {
        let id = ctx.id.clone();
        let counters = ExporterCounters::new(ctx.telemetry.exporter(&id));
        let helper = Self {
            inner: Arc::new(Inner {
                id,
                settings,
                sender,
                state: AtomicU8::new(NOT_STARTED),
                queue: OnceLock::new(),
                persistent: OnceLock::new(),
                waiters: Mutex::new(HashMap::new()),
                next_ticket: AtomicU64::new(0),
                workers: Mutex::new(Vec::new()),
                abort: CancellationToken::new(),
                left_refused: AtomicU64::new(0),
                left_lost: AtomicU64::new(0),
                left_kept: AtomicU64::new(0),
                room: Notify::new(),
                inline_sends: AtomicUsize::new(0),
                inline_idle: Notify::new(),
                counters,
            }),
        };
        let weak = Arc::downgrade(&helper.inner);
        let fsyncs = weak.clone();
        ctx.telemetry.observe_exporter_queue(
            &ctx.id,
            move || {
                let inner = weak.upgrade()?;
                let queue = inner.queue.get()?;
                Some((queue.size(), queue.capacity()))
            },
            move || Some(fsyncs.upgrade()?.persistent.get()?.fsyncs()),
        );
        helper
    }

    /// The exporter's id.
    pub fn id(&self) -> &ComponentId {
        &self.inner.id
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ExporterHelperSettings {
        &self.inner.settings
    }

    /// Record counts by outcome.
    pub fn counters(&self) -> &ExporterCounters {
        &self.inner.counters
    }

    /// The queue's fill level and capacity in its sizer's unit; `None`
    /// without a queue or before start.
    pub fn queue_usage(&self) -> Option<(usize, usize)> {
        self.inner.queue.get().map(|q| (q.size(), q.capacity()))
    }
}

impl Inner {
    fn not_running(&self) -> PipelineError {
        PipelineError::retryable(format!("exporter {} is not running", self.id))
    }

    fn shutting_down(&self) -> PipelineError {
        PipelineError::retryable(format!(
            "exporter {} is shutting down: the batch was not exported",
            self.id
        ))
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, HashMap<Ticket, oneshot::Sender<Outcome>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One attempt, bounded by `timeout`.
    async fn attempt(&self, batch: &LogBatch) -> Result<(), SendError> {
        let timeout = self.settings.timeout.0;
        if timeout.is_zero() {
            return self.sender.send(batch).await;
        }
        match tokio::time::timeout(timeout, self.sender.send(batch)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Batch(PipelineError::retryable(format!(
                "exporter {}: send timed out after {} (timeout)",
                self.id, self.settings.timeout
            )))),
        }
    }

    /// Attempts until every record is delivered or refused for good, a
    /// permanent error, or `max_elapsed_time`. After a partial failure only
    /// the records that remain are attempted again. Returns the outcome and
    /// how many records failed.
    async fn send_with_retry(&self, batch: &LogBatch) -> (Outcome, usize) {
        let retry = &self.settings.retry_on_failure;
        let started = Instant::now();
        let mut backoff = Backoff::new(retry);
        let mut attempts = 0u32;
        // After a partial failure: the records still to deliver.
        let mut pending: Option<LogBatch> = None;
        let mut refused = Refused::default();
        loop {
            attempts += 1;
            let current = pending.as_ref().unwrap_or(batch);
            let error = match self.attempt(current).await {
                Ok(()) => return refused.outcome(&self.id, batch.len(), None),
                Err(SendError::Batch(e)) => e,
                Err(SendError::Partial(p)) => {
                    refused.add(p.rejected, p.rejection);
                    match p.error {
                        Some(e) if !p.remaining.is_empty() => {
                            pending = Some(p.remaining);
                            e
                        }
                        _ => return refused.outcome(&self.id, batch.len(), None),
                    }
                }
            };
            let remaining = pending.as_ref().map_or(batch.len(), LogBatch::len);
            if error.is_permanent() || !retry.enabled {
                return refused.outcome(&self.id, batch.len(), Some((remaining, error)));
            }
            // A destination's own hint beats our guess.
            let mut wait = error.retry_after().unwrap_or_else(|| backoff.next_wait());
            let max_elapsed = retry
                .max_elapsed(self.settings.sending_queue.storage.is_some())
                .0;
            if !max_elapsed.is_zero() {
                let left = max_elapsed.saturating_sub(started.elapsed());
                if left.is_zero() {
                    let gave_up = PipelineError::retryable(format!(
                        "exporter {}: gave up after {attempts} attempts over {} \
                         (retry_on_failure.max_elapsed_time); last error: {}",
                        self.id,
                        ConfigDuration(max_elapsed),
                        error.message()
                    ));
                    return refused.outcome(&self.id, batch.len(), Some((remaining, gave_up)));
                }
                wait = wait.min(left);
            }
            tracing::debug!(
                exporter = %self.id,
                error = error.message(),
                records = remaining,
                wait_ms = wait.as_millis() as u64,
                "send failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// `send_with_retry`, abandoned at the shutdown deadline. Counts the outcome.
    async fn export(&self, batch: &LogBatch) -> Outcome {
        let (result, failed) = tokio::select! {
            biased;
            _ = self.abort.cancelled() => (Err(self.shutting_down()), batch.len()),
            result = self.send_with_retry(batch) => result,
        };
        ExporterCounters::add(&self.counters.sent, batch.len() - failed);
        ExporterCounters::add(&self.counters.failed, failed);
        result
    }

    async fn worker(self: Arc<Self>, queue: Arc<dyn QueueStorage>) {
        loop {
            let item = tokio::select! {
                biased;
                _ = self.abort.cancelled() => return,
                item = queue.pop() => item,
            };
            let Some(item) = item else { return };
            let result = self.export(&item.batch).await;
            if self.abort.is_cancelled() && result.is_err() {
                // Left unacknowledged: a persistent storage delivers it
                // again at the next start. The caller hears at shutdown.
                self.abandoned(&item);
                continue;
            }
            queue.ack(item.id);
            self.room.notify_waiters();
            let waiter = item.ticket.and_then(|t| self.lock_waiters().remove(&t));
            match waiter {
                Some(tx) => {
                    // The caller may have gone away; the outcome is counted anyway.
                    let _ = tx.send(result);
                }
                None => {
                    if let Err(e) = result {
                        tracing::error!(
                            exporter = %self.id,
                            records = item.batch.len(),
                            audit_ids = %audit_ids(&item.batch),
                            error = e.message(),
                            "dropping a batch that was acknowledged when queued"
                        );
                    }
                }
            }
        }
    }

    async fn consume_queued(&self, queue: &Arc<dyn QueueStorage>, batch: LogBatch) -> Outcome {
        let queue_settings = &self.settings.sending_queue;
        let records = batch.len();
        let size = queue_settings.sizer.size_of(&batch);
        let refused = |e: PushError| {
            ExporterCounters::add(&self.counters.enqueue_failed, records);
            match e {
                PushError::Full { .. } | PushError::DiskFull { .. } => PipelineError::backpressure(
                    format!("exporter {}: {e}; retry later", self.id),
                    Some(QUEUE_FULL_RETRY_AFTER),
                ),
                PushError::Storage(message) => PipelineError::backpressure(
                    format!("exporter {}: {message}; retry later", self.id),
                    Some(QUEUE_FULL_RETRY_AFTER),
                ),
                PushError::TooLarge { size, capacity } => PipelineError::permanent(format!(
                    "exporter {}: the batch ({size} {unit}) is larger than the whole sending queue \
                     (sending_queue.queue_size: {capacity} {unit}); send smaller batches or raise queue_size",
                    self.id,
                    unit = queue_settings.sizer.name(),
                )),
                PushError::Closed => self.not_running(),
            }
        };
        let waiter = queue_settings.waits_for_result().then(|| {
            let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            // Registered before the push, so that a worker finishing the
            // batch at once finds it.
            self.lock_waiters().insert(ticket, tx);
            (ticket, rx)
        });
        let ticket = waiter.as_ref().map(|(t, _)| *t);
        if let Err(e) = self.push(queue, batch, size, ticket).await {
            if let Some(t) = ticket {
                self.lock_waiters().remove(&t);
            }
            return Err(refused(e));
        }
        match waiter {
            None => Ok(()),
            Some((_, rx)) => rx.await.unwrap_or_else(|_| Err(self.shutting_down())),
        }
    }

    /// Pushes, waiting for room while the queue is full when `when_full:
    /// block` (until shutdown).
    async fn push(
        &self,
        queue: &Arc<dyn QueueStorage>,
        batch: LogBatch,
        size: usize,
        ticket: Option<Ticket>,
    ) -> Result<QueueId, PushError> {
        let block = self.settings.sending_queue.when_full == WhenFull::Block;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match queue.push(batch.clone(), size, ticket).await {
                Err(PushError::Full { .. } | PushError::DiskFull { .. }) if block => {
                    tokio::select! {
                        _ = self.abort.cancelled() => return Err(PushError::Closed),
                        _ = &mut room => {}
                        // A wake-up may come from a push that is not ours.
                        _ = tokio::time::sleep(ROOM_POLL) => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// Counts a queued batch abandoned at the shutdown deadline: kept by a
    /// persistent queue (counted at shutdown, with the queue), answered as
    /// failed to a caller still waiting, or lost.
    fn abandoned(&self, item: &QueuedBatch) {
        if self.settings.sending_queue.storage.is_some() {
            self.left_kept.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let waited_for = item
            .ticket
            .is_some_and(|t| self.lock_waiters().contains_key(&t));
        let counter = if waited_for {
            &self.left_refused
        } else {
            &self.left_lost
        };
        counter.fetch_add(item.batch.len() as u64, Ordering::Relaxed);
    }

    async fn consume_inline(&self, batch: LogBatch) -> Outcome {
        struct InlineGuard<'a>(&'a Inner);
        impl Drop for InlineGuard<'_> {
            fn drop(&mut self) {
                if self.0.inline_sends.fetch_sub(1, Ordering::SeqCst) == 1 {
                    self.0.inline_idle.notify_waiters();
                }
            }
        }
        self.inline_sends.fetch_add(1, Ordering::SeqCst);
        let _guard = InlineGuard(self);
        // Checked after counting ourselves in, so shutdown either sees this
        // send or this send sees shutdown.
        if self.state.load(Ordering::SeqCst) != RUNNING {
            return Err(self.not_running());
        }
        let outcome = self.export(&batch).await;
        if outcome.is_err() && self.abort.is_cancelled() {
            self.left_refused
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        outcome
    }

    /// Opens the persistent queue in this exporter's namespace under
    /// `storage`, and says what it found there.
    async fn open_persistent(&self, storage: &str) -> Result<PersistentQueue, StartError> {
        let settings = &self.settings.sending_queue;
        let dir = std::path::Path::new(storage).join(namespace(&self.id.to_string()));
        let (capacity, max_bytes, sizer) =
            (settings.queue_size, settings.max_bytes(), settings.sizer);
        let opened = tokio::task::spawn_blocking(move || {
            PersistentQueue::open(&dir, capacity, max_bytes, |b| sizer.size_of(b))
        })
        .await
        .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        let queue = opened.map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        let recovery = queue.recovery();
        for damage in &recovery.damaged {
            tracing::error!(exporter = %self.id, "persistent queue damaged: {damage}");
        }
        if recovery.batches > 0 {
            tracing::info!(
                exporter = %self.id,
                queue = %queue.dir().display(),
                batches = recovery.batches,
                records = recovery.records,
                "persistent queue: sending again what was not confirmed sent before the last stop"
            );
        }
        Ok(queue)
    }

    /// Waits until no inline send is in progress, or the deadline (if any).
    async fn wait_inline_idle(&self, deadline: Option<Instant>) -> bool {
        loop {
            let idle = self.inline_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inline_sends.load(Ordering::SeqCst) == 0 {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, idle).await.is_err() {
                        return false;
                    }
                }
                None => idle.await,
            }
        }
    }
}

#[async_trait]
impl Component for ExporterHelper {
    async fn start(&self) -> Result<(), StartError> {
        let inner = &self.inner;
        if inner.state.load(Ordering::SeqCst) != NOT_STARTED {
            return Err(StartError(format!(
                "exporter {} was already started",
                inner.id
            )));
        }
        inner.sender.start().await?;
        let queue_settings = &inner.settings.sending_queue;
        if queue_settings.enabled {
            let queue: Arc<dyn QueueStorage> = match &queue_settings.storage {
                None => Arc::new(MemoryQueue::new(queue_settings.queue_size)),
                Some(storage) => {
                    let queue = Arc::new(inner.open_persistent(storage).await?);
                    let _ = inner.persistent.set(queue.clone());
                    queue
                }
            };
            let _ = inner.queue.set(queue.clone());
            let mut workers = inner.workers.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..queue_settings.num_consumers {
                workers.push(tokio::spawn(inner.clone().worker(queue.clone())));
            }
            if !queue_settings.waits_for_result() && queue_settings.storage.is_none() {
                tracing::warn!(
                    exporter = %inner.id,
                    "sending_queue.wait_for_result is false with an in-memory queue: \
                     events are acknowledged before they are exported and may be lost on a crash"
                );
            }
        }
        inner.state.store(RUNNING, Ordering::SeqCst);
        Ok(())
    }

    async fn shutdown(&self, deadline: Instant) {
        let inner = &self.inner;
        if inner.state.swap(STOPPING, Ordering::SeqCst) != RUNNING {
            return;
        }
        let mut drained = true;
        let persistent_storage = inner.settings.sending_queue.storage.is_some();
        if let Some(queue) = inner.queue.get() {
            queue.close();
            let workers =
                std::mem::take(&mut *inner.workers.lock().unwrap_or_else(|e| e.into_inner()));
            let mut all = futures::future::join_all(workers);
            if tokio::time::timeout_at(deadline, &mut all).await.is_err() {
                drained = false;
                inner.abort.cancel();
                all.await;
            }
        }
        if !inner.wait_inline_idle(Some(deadline)).await {
            drained = false;
            inner.abort.cancel();
            // Cancelled sends return at once.
            inner.wait_inline_idle(None).await;
        }
        // What the workers never popped, from an in-memory queue, is gone
        // with the process (a persistent one keeps it).
        if let Some(queue) = inner.queue.get()
            && !persistent_storage
        {
            while let Some(Some(item)) = queue.pop().now_or_never() {
                inner.abandoned(&item);
            }
        }
        // Whoever still waits has a batch that was abandoned in the queue.
        let abandoned: Vec<_> = inner.lock_waiters().drain().collect();
        for (_, tx) in abandoned {
            let _ = tx.send(Err(inner.shutting_down()));
        }
        let persistent = inner.settings.sending_queue.storage.is_some();
        if let Some(queue) = inner.queue.get()
            && !queue.is_empty()
        {
            if persistent {
                tracing::warn!(
                    exporter = %inner.id,
                    batches = queue.len(),
                    "shutdown deadline reached: queued batches stay in the persistent queue and are sent at the next start"
                );
            } else {
                tracing::warn!(
                    exporter = %inner.id,
                    batches = queue.len(),
                    "shutdown deadline reached: queued batches were not exported"
                );
            }
        } else if !drained {
            tracing::warn!(exporter = %inner.id, "shutdown deadline reached: sends in progress were abandoned");
        }
        if let Some(queue) = inner.queue.get() {
            queue.sync().await;
        }
        if let Some(queue) = inner.persistent.get() {
            inner
                .left_kept
                .fetch_add(queue.len() as u64, Ordering::Relaxed);
            tracing::info!(
                exporter = %inner.id,
                queue = %queue.dir().display(),
                batches_left = queue.len(),
                disk_bytes = queue.disk_bytes(),
                fsyncs = queue.fsyncs(),
                "persistent queue closed"
            );
        }
        inner.sender.shutdown().await;
    }

    async fn check_connectivity(&self) -> Connectivity {
        self.inner.sender.check_connectivity().await
    }

    fn leftover(&self) -> Leftover {
        let inner = &self.inner;
        Leftover {
            kept_batches: inner.left_kept.load(Ordering::Relaxed),
            kept_in: inner
                .persistent
                .get()
                .map(|q| q.dir().display().to_string()),
            refused_records: inner.left_refused.load(Ordering::Relaxed),
            lost_records: inner.left_lost.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl LogsConsumer for ExporterHelper {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        let inner = &self.inner;
        if inner.state.load(Ordering::SeqCst) != RUNNING {
            return Err(inner.not_running());
        }
        if batch.is_empty() {
            return Ok(());
        }
        match inner.queue.get() {
            Some(queue) => inner.consume_queued(queue, batch).await,
            None => inner.consume_inline(batch).await,
        }
    }
}

impl Exporter for ExporterHelper {}
