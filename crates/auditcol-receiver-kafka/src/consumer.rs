//! The consumer loop: messages in, batches to the pipeline, offsets stored
//! only once the pipeline acknowledged the records (at-least-once).
//!
//! ```text
//! recv ─> decode ─> buffer (≤ max_batch_messages; full → pause partitions)
//!                     └─> job: dead-letter the undecodable, consume(batch)
//!                            ├─ Ok → store offsets (librdkafka commits them)
//!                            ├─ retryable / backpressure → same job again after backoff
//!                            └─ permanent → dead-letter the batch's messages, or skip them (logged)
//! ```
//!
//! One job is in the pipeline at a time, so offsets are stored in order:
//! when a job's offsets are stored, everything before them in each
//! partition was handled. While a job is in the pipeline the next messages
//! gather in the buffer; when it is full the assigned partitions are paused
//! (librdkafka stops fetching) and resumed once it empties, so a slow or
//! failing pipeline holds at most two batches in memory. The loop keeps
//! polling while paused: that serves rebalances and keeps the member in
//! its group (`max.poll.interval.ms`).
//!
//! Rebalances: buffered messages of revoked partitions are dropped (their
//! new owner reads them from the last committed offset); librdkafka refuses
//! to store offsets of partitions no longer assigned, so a job that ends
//! after its partitions moved commits nothing for them. Either way a record
//! may be delivered twice, never lost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auditcol_core::receiverhelper::now_unix_nanos;
use auditcol_core::telemetry::{
    Counter, Gauge, MetricSpec, MetricsLevel, ReceiverTelemetry, RefusalReason, Telemetry,
};
use auditcol_core::{ComponentId, LogBatch, PipelineError, SharedConsumer};
use auditcol_kafka::delivery::delivery_error;
use auditcol_kafka::encoding::{HEADER_AUDIT_ID, HEADER_AUDIT_SOURCE};
use auditcol_kafka::{Encoding, EventHeaders};
use futures::future::BoxFuture;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest the loop waits in `recv` before it looks around again (stop,
/// pause, rebalance); also how often librdkafka sees the application poll.
const POLL_TICK: Duration = Duration::from_millis(500);

/// Backoff between attempts of a job the pipeline refused for now.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// `auditcol_receiver_kafka_commit_lag`.
const COMMIT_LAG: MetricSpec = MetricSpec::gauge(
    "auditcol_receiver_kafka_commit_lag",
    "Messages read from Kafka whose offsets are not stored for commit yet (buffered, or in the pipeline)",
    MetricsLevel::Normal,
);

/// `auditcol_receiver_kafka_dead_lettered_messages`.
const DEAD_LETTERED: MetricSpec = MetricSpec::counter(
    "auditcol_receiver_kafka_dead_lettered_messages",
    "Messages written to dead_letter_topic (undecodable, or refused for good by the pipeline)",
    MetricsLevel::Normal,
);

/// The metrics this receiver declares beyond the receivers' common ones.
pub const METRICS: &[MetricSpec] = &[COMMIT_LAG, DEAD_LETTERED];

/// What the receiver counts: records accepted and refused
/// (`otelcol_receiver_*_log_records{transport="kafka"}`), undecodable
/// messages (`auditcol_receiver_refused_requests{reason="invalid"}`), dead
/// letters, and the commit lag.
pub struct KafkaReceiverCounters {
    messages: AtomicU64,
    undecodable_messages: AtomicU64,
    receiver: ReceiverTelemetry,
    dead_lettered: Counter,
    commit_lag: Gauge,
}

impl KafkaReceiverCounters {
    pub(crate) fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        let labels = [("receiver", id.to_string())];
        let labels = [(labels[0].0, labels[0].1.as_str())];
        Self {
            messages: AtomicU64::new(0),
            undecodable_messages: AtomicU64::new(0),
            receiver: telemetry.receiver(id, "kafka"),
            dead_lettered: telemetry.counter(&DEAD_LETTERED, &labels),
            commit_lag: telemetry.gauge(&COMMIT_LAG, &labels),
        }
    }

    /// Messages read from Kafka.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Records the pipeline acknowledged.
    pub fn accepted_records(&self) -> u64 {
        self.receiver.accepted_records()
    }

    /// Messages that could not be decoded (skipped or dead-lettered).
    pub fn undecodable_messages(&self) -> u64 {
        self.undecodable_messages.load(Ordering::Relaxed)
    }

    /// Messages written to `dead_letter_topic`.
    pub fn dead_lettered_messages(&self) -> u64 {
        self.dead_lettered.get()
    }

    /// Records the pipeline refused for good.
    pub fn refused_records(&self) -> u64 {
        self.receiver.refused_log_records()
    }

    /// Messages read whose offsets are not stored for commit yet.
    pub fn commit_lag(&self) -> i64 {
        self.commit_lag.get()
    }
}

/// The consumer's callbacks: rebalances are noted for the loop and logged.
pub(crate) struct ReceiverContext {
    id: String,
    /// Partitions revoked since the loop last looked.
    revoked: Mutex<Vec<(String, i32)>>,
    /// Rebalances so far: a new assignment starts unpaused.
    rebalances: AtomicU64,
}

impl ReceiverContext {
    pub(crate) fn new(id: String) -> Self {
        Self {
            id,
            revoked: Mutex::new(Vec::new()),
            rebalances: AtomicU64::new(0),
        }
    }

    fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn partitions(list: &TopicPartitionList) -> String {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

impl ClientContext for ReceiverContext {}

impl ConsumerContext for ReceiverContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                tracing::info!(receiver = %self.id, partitions = %partitions(list), "partitions revoked");
                self.revoked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(
                        list.elements()
                            .iter()
                            .map(|e| (e.topic().to_owned(), e.partition())),
                    );
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "consumer group rebalance failed")
            }
        }
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // Tests and operators learn from this line that the member reads.
            tracing::info!(receiver = %self.id, partitions = %partitions(list), "partitions assigned");
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) => {
                tracing::debug!(receiver = %self.id, offsets = ?offsets.to_topic_map(), "offsets committed")
            }
            // Nothing new to commit since the last time.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::error::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "cannot commit offsets; they are committed again later, or the records are read again")
            }
        }
    }
}

/// The dead-letter topic and its producer.
pub(crate) struct DeadLetters {
    pub(crate) topic: String,
    pub(crate) producer: FutureProducer,
}

/// One message read, decoded.
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    /// Its records, or why it cannot be read.
    decoded: Result<LogBatch, String>,
    /// The message itself, kept for the dead-letter topic.
    raw: Option<OwnedMessage>,
}

/// Messages on their way through the pipeline, and what is left to do.
struct Job {
    messages: Vec<Received>,
    /// Messages still to write to the dead-letter topic, with why.
    dead_letters: Vec<(usize, String)>,
    /// The records still to hand to the pipeline.
    batch: Option<LogBatch>,
    /// Failed attempts so far, for the log.
    failures: u32,
}

impl Job {
    /// Nothing left to do: its offsets can be stored.
    fn is_done(&self) -> bool {
        self.dead_letters.is_empty() && self.batch.is_none()
    }
}

/// What one attempt did.
enum Step {
    DeadLettered(Vec<usize>, Result<(), PipelineError>),
    Consumed(usize, Result<(), PipelineError>),
}

/// The consumer loop of one receiver.
pub(crate) struct ConsumerLoop {
    pub(crate) id: String,
    /// `audit.source` of records that do not say.
    pub(crate) source: String,
    pub(crate) encoding: Encoding,
    pub(crate) max_batch_messages: usize,
    pub(crate) next: SharedConsumer,
    pub(crate) consumer: Arc<StreamConsumer<ReceiverContext>>,
    pub(crate) dead_letters: Option<Arc<DeadLetters>>,
    pub(crate) counters: Arc<KafkaReceiverCounters>,
}

impl ConsumerLoop {
    /// Runs until `stop`; then waits for the attempt in flight (its offsets
    /// are stored if it succeeds), commits, and closes the consumer.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut buffer: Vec<Received> = Vec::new();
        let mut job: Option<Job> = None;
        let mut attempt: Option<BoxFuture<'static, Step>> = None;
        let mut retry_at: Option<Instant> = None;
        let mut backoff = INITIAL_BACKOFF;
        let mut paused = false;
        let mut rebalances = 0;
        let mut stopping = false;
        loop {
            let in_job = job.as_ref().map_or(0, |j| j.messages.len());
            self.counters
                .commit_lag
                .set(i64::try_from(buffer.len() + in_job).unwrap_or(i64::MAX));
            let context = self.consumer.context();
            let revoked = context.take_revoked();
            if !revoked.is_empty() {
                let before = buffer.len();
                buffer.retain(|m| {
                    !revoked
                        .iter()
                        .any(|(t, p)| *t == m.topic && *p == m.partition)
                });
                if buffer.len() < before {
                    tracing::debug!(receiver = %self.id, dropped = before - buffer.len(), "dropped buffered messages of revoked partitions: their new owner reads them");
                }
            }
            let now_rebalances = context.rebalances.load(Ordering::SeqCst);
            if now_rebalances != rebalances {
                rebalances = now_rebalances;
                paused = false;
            }

            if job.is_none() && !buffer.is_empty() && !stopping {
                let take = buffer.len().min(self.max_batch_messages);
                job = Some(self.job(buffer.drain(..take).collect()));
            }
            if attempt.is_none()
                && retry_at.is_none()
                && let Some(current) = &job
            {
                if current.is_done() {
                    // Even while stopping: what the pipeline accepted is committed.
                    self.finish(current);
                    job = None;
                    continue;
                }
                if !stopping {
                    attempt = self.attempt(current);
                }
            }
            if stopping && attempt.is_none() {
                break;
            }

            let full = buffer.len() >= self.max_batch_messages;
            if full != paused {
                self.set_paused(full);
                paused = full;
            }

            let has_attempt = attempt.is_some();
            let in_flight = async {
                match attempt.as_mut() {
                    Some(future) => future.await,
                    None => std::future::pending().await,
                }
            };
            let retry = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now));
            tokio::select! {
                biased;
                _ = stop.cancelled(), if !stopping => {
                    stopping = true;
                }
                step = in_flight, if has_attempt => {
                    attempt = None;
                    if let Some(current) = job.as_mut() {
                        match self.after(step, current, stopping) {
                            Ok(()) => backoff = INITIAL_BACKOFF,
                            Err(wait) => {
                                if stopping {
                                    tracing::warn!(receiver = %self.id, messages = current.messages.len(), "stopping with a batch not accepted by the pipeline: its offsets are not committed, it is read again at the next start");
                                    job = None;
                                } else {
                                    retry_at = Some(Instant::now() + wait.unwrap_or(backoff));
                                    backoff = (backoff * 2).min(MAX_BACKOFF);
                                }
                            }
                        }
                    }
                }
                _ = retry, if retry_at.is_some() => {
                    retry_at = None;
                }
                received = tokio::time::timeout(POLL_TICK, self.consumer.recv()), if !stopping => {
                    match received {
                        Err(_) => {}
                        Ok(Ok(message)) => buffer.push(self.receive(&message)),
                        Ok(Err(e)) => tracing::warn!(receiver = %self.id, error = %e, "Kafka consumer error"),
                    }
                }
            }
        }
        self.counters.commit_lag.set(0);
        self.close().await;
    }

    /// Reads one message: its records, or why it has none.
    fn receive(&self, message: &BorrowedMessage<'_>) -> Received {
        self.counters.messages.fetch_add(1, Ordering::Relaxed);
        let (mut id, mut source) = (None, None);
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
                match header.key {
                    HEADER_AUDIT_ID => id = value,
                    HEADER_AUDIT_SOURCE => source = value,
                    _ => {}
                }
            }
        }
        let decoded = match message.payload() {
            None | Some([]) => Err("the message has no value".to_owned()),
            Some(value) => self
                .encoding
                .decode(value, EventHeaders { id, source }, &self.source)
                .map_err(|e| e.0),
        };
        if let Err(error) = &decoded {
            self.counters
                .undecodable_messages
                .fetch_add(1, Ordering::Relaxed);
            let fate = match &self.dead_letters {
                Some(d) => format!("written to the dead-letter topic `{}`", d.topic),
                None => "skipped (set dead_letter_topic to keep such messages)".to_owned(),
            };
            tracing::debug!(
                receiver = %self.id,
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                encoding = %self.encoding,
                error = %error,
                "cannot decode a message: {fate}"
            );
            // WARN, the first and then a summary every 10 s: a producer
            // writing garbage must not flood the log.
            self.counters.receiver.refused_request(
                RefusalReason::Invalid,
                0,
                None,
                &format_args!(
                    "cannot decode the message at {}/{}@{} (encoding {}): {error}; {fate}",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    self.encoding
                ),
            );
        }
        Received {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            decoded,
            raw: self.dead_letters.as_ref().map(|_| message.detach()),
        }
    }

    fn job(&self, mut messages: Vec<Received>) -> Job {
        let mut batch = LogBatch::new();
        let mut dead_letters = Vec::new();
        for (n, message) in messages.iter_mut().enumerate() {
            match &mut message.decoded {
                Ok(records) => batch.merge(std::mem::take(records)),
                Err(why) if self.dead_letters.is_some() => dead_letters.push((n, why.clone())),
                Err(_) => {}
            }
        }
        batch.prepare_ingest(now_unix_nanos(), &self.source);
        tracing::debug!(receiver = %self.id, messages = messages.len(), records = batch.len(), "messages received");
        Job {
            messages,
            dead_letters,
            batch: (!batch.is_empty()).then_some(batch),
            failures: 0,
        }
    }

    /// The next thing to do for `job`; `None` only when it is done.
    fn attempt(&self, job: &Job) -> Option<BoxFuture<'static, Step>> {
        if !job.dead_letters.is_empty() {
            let dead_letters = self.dead_letters.clone()?;
            let letters: Vec<(usize, OwnedMessage, String)> = job
                .dead_letters
                .iter()
                .filter_map(|(n, why)| Some((*n, job.messages[*n].raw.clone()?, why.clone())))
                .collect();
            let id = self.id.clone();
            return Some(Box::pin(async move {
                let (failed, result) = dead_letter(&dead_letters, &id, letters).await;
                Step::DeadLettered(failed, result)
            }));
        }
        let batch = job.batch.clone()?;
        let next = self.next.clone();
        Some(Box::pin(async move {
            let records = batch.len();
            Step::Consumed(records, next.consume(batch).await)
        }))
    }

    /// Records what an attempt did in `job`. `Err(retry_after)` when the
    /// same step must be attempted again.
    fn after(&self, step: Step, job: &mut Job, stopping: bool) -> Result<(), Option<Duration>> {
        let failed = |job: &mut Job, error: &PipelineError, what: &str| {
            job.failures += 1;
            let offsets = offsets_text(&job.messages);
            if job.failures == 1 && !stopping {
                tracing::warn!(receiver = %self.id, offsets = %offsets, error = error.message(), "{what}; trying again (the offsets are not committed meanwhile)");
            } else {
                tracing::debug!(receiver = %self.id, offsets = %offsets, error = error.message(), attempt = job.failures, "{what}");
            }
            Err(error.retry_after())
        };
        match step {
            Step::DeadLettered(failed_letters, Ok(())) => {
                let written = job.dead_letters.len() - failed_letters.len();
                self.counters.dead_lettered.inc_by(written as u64);
                job.dead_letters.clear();
                Ok(())
            }
            Step::DeadLettered(failed_letters, Err(error)) => {
                let written = job.dead_letters.len() - failed_letters.len();
                self.counters.dead_lettered.inc_by(written as u64);
                job.dead_letters.retain(|(n, _)| failed_letters.contains(n));
                failed(job, &error, "cannot write to the dead-letter topic")
            }
            Step::Consumed(records, Ok(())) => {
                self.counters.receiver.accepted(records);
                job.batch = None;
                Ok(())
            }
            Step::Consumed(records, Err(error)) if error.is_permanent() => {
                // Logged at ERROR below, every time: these records are lost
                // unless they go to the dead-letter topic.
                self.counters.receiver.count_refused(records);
                job.batch = None;
                let offsets = offsets_text(&job.messages);
                match &self.dead_letters {
                    Some(d) => {
                        tracing::error!(receiver = %self.id, offsets = %offsets, records, error = error.message(), "the pipeline refused the records for good: their messages go to the dead-letter topic `{}`", d.topic);
                        job.dead_letters = job
                            .messages
                            .iter()
                            .enumerate()
                            .filter(|(_, m)| m.decoded.is_ok())
                            .map(|(n, _)| {
                                (n, format!("refused by the pipeline: {}", error.message()))
                            })
                            .collect();
                    }
                    None => {
                        tracing::error!(receiver = %self.id, offsets = %offsets, records, error = error.message(), "the pipeline refused the records for good: skipped (set dead_letter_topic to keep them)")
                    }
                }
                Ok(())
            }
            Step::Consumed(_, Err(error)) => {
                failed(job, &error, "the pipeline did not accept a batch")
            }
        }
    }

    /// A job is done: its offsets are stored, for librdkafka to commit.
    fn finish(&self, job: &Job) {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in &job.messages {
            let offset = next.entry((&m.topic, m.partition)).or_insert(0);
            *offset = (*offset).max(m.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(e) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
                tracing::warn!(receiver = %self.id, error = %e, "cannot note an offset");
            }
        }
        match self.consumer.store_offsets(&list) {
            Ok(()) => {
                tracing::debug!(receiver = %self.id, offsets = %offsets_text(&job.messages), "offsets stored")
            }
            // librdkafka refuses offsets of partitions no longer assigned: the
            // new owner reads those records again.
            Err(e) => {
                tracing::debug!(receiver = %self.id, error = %e, offsets = %offsets_text(&job.messages), "offsets not stored: partitions no longer assigned")
            }
        }
    }

    fn set_paused(&self, pause: bool) {
        let assignment = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "cannot read the assignment");
                return;
            }
        };
        let result = if pause {
            tracing::debug!(receiver = %self.id, "pipeline busy: pausing the partitions");
            self.consumer.pause(&assignment)
        } else {
            tracing::debug!(receiver = %self.id, "resuming the partitions");
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            tracing::warn!(receiver = %self.id, error = %e, pause, "cannot pause or resume partitions");
        }
    }

    /// Commits what is stored and leaves the group, off the async threads
    /// (both block).
    async fn close(self) {
        let consumer = self.consumer;
        let id = self.id;
        let _ = tokio::task::spawn_blocking(move || {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::error::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(receiver = %id, error = %e, "cannot commit offsets at stop; the records since the last commit are read again"),
            }
            drop(consumer);
        })
        .await;
    }
}

/// `topic/partition first-last` per partition, for logs.
fn offsets_text(messages: &[Received]) -> String {
    let mut ranges: BTreeMap<(&str, i32), (i64, i64)> = BTreeMap::new();
    for m in messages {
        let range = ranges
            .entry((&m.topic, m.partition))
            .or_insert((m.offset, m.offset));
        range.0 = range.0.min(m.offset);
        range.1 = range.1.max(m.offset);
    }
    ranges
        .iter()
        .map(|((t, p), (a, b))| {
            if a == b {
                format!("{t}/{p}@{a}")
            } else {
                format!("{t}/{p}@{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes `letters` to the dead-letter topic: each message as it was, with
/// headers saying where it came from and why. Returns the indices of the
/// letters not written.
async fn dead_letter(
    dead_letters: &DeadLetters,
    receiver: &str,
    letters: Vec<(usize, OwnedMessage, String)>,
) -> (Vec<usize>, Result<(), PipelineError>) {
    let mut reports = Vec::with_capacity(letters.len());
    let mut failed = Vec::new();
    let mut first_error = None;
    for (n, message, why) in &letters {
        let mut headers = message.headers().cloned().unwrap_or_else(OwnedHeaders::new);
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        for (key, value) in [
            ("auditcol.error", why.as_str()),
            ("auditcol.receiver", receiver),
            ("auditcol.topic", message.topic()),
            ("auditcol.partition", &partition),
            ("auditcol.offset", &offset),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&dead_letters.topic).headers(headers);
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        match dead_letters.producer.send_result(record) {
            Ok(report) => reports.push((*n, report)),
            Err((e, _)) => {
                failed.push(*n);
                first_error.get_or_insert(delivery_error(&e, &dead_letters.topic, "a dead letter"));
            }
        }
    }
    for (n, report) in reports {
        let error = match report.await {
            Ok(Ok(_)) => continue,
            Ok(Err((e, _))) => delivery_error(&e, &dead_letters.topic, "a dead letter"),
            Err(_) => PipelineError::retryable("the dead-letter producer closed"),
        };
        failed.push(n);
        first_error.get_or_insert(error);
    }
    match first_error {
        None => (failed, Ok(())),
        // A dead letter must not be lost either: retried, whatever the cause.
        Some(e) => (failed, Err(PipelineError::retryable(e.message()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(topic: &str, partition: i32, offset: i64) -> Received {
        Received {
            topic: topic.to_owned(),
            partition,
            offset,
            decoded: Ok(LogBatch::new()),
            raw: None,
        }
    }

    #[test]
    fn offsets_are_named_as_ranges_per_partition() {
        let messages = [
            received("audit", 1, 7),
            received("audit", 0, 3),
            received("audit", 0, 5),
            received("other", 0, 0),
        ];
        assert_eq!(offsets_text(&messages), "audit/0@3-5,audit/1@7,other/0@0");
    }
}
