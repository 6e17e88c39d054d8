//! [`KafkaSender`]: one batch as Kafka messages, and what became of each.
//!
//! A batch is first planned into messages: with `json`/`protobuf` one per
//! audit event (other records are not sent: these encodings carry audit
//! events), with `otlp_*` one per group of records that share a topic and a
//! key (so `key: none` and no `topic_from_attribute` make one message per
//! batch, as the Collector's exporter does). A message larger than
//! `max_message_bytes` is split in halves (OTLP) or, for one event, refused
//! for good naming the event.
//!
//! Every message is handed to librdkafka in batch order, then the sender
//! waits for every delivery report. Delivered messages are done; those that
//! failed in a way that may pass (brokers down, timeout, leader moving)
//! remain, and only they are sent again by the exporter helper; those the
//! broker refused for good (too large) are reported and counted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auditcol_core::component::{Connectivity, StartError};
use auditcol_core::exporterhelper::{BatchSender, PartialFailure, SendError};
use auditcol_core::model::conventions::AUDIT_SOURCE;
use auditcol_core::telemetry::{DropReason, Drops, Telemetry};
use auditcol_core::{LogBatch, PipelineError, RecordRef};
use auditcol_kafka::delivery::delivery_error;
use auditcol_kafka::encoding::{HEADER_AUDIT_ID, HEADER_AUDIT_SOURCE};
use auditcol_kafka::topics::missing_topics;
use auditcol_kafka::{Encoding, TopicCheckError, check_topic_name, check_topics, create_topics};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::{CreateTopic, KafkaExporterConfig, MessageKey};

/// How long a metadata request (topic check) or topic creation may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before handing a message again to a full librdkafka queue.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// Sends batches to Kafka.
pub struct KafkaSender {
    /// The exporter id, for messages.
    id: String,
    topic: String,
    topic_from_attribute: Option<String>,
    key: MessageKey,
    encoding: Encoding,
    max_message_bytes: usize,
    create_topic: Option<CreateTopic>,
    /// The producer's librdkafka config.
    producer_config: ClientConfig,
    /// The connection alone: metadata checks and topic creation.
    admin_config: ClientConfig,
    brokers: String,
    producer: Mutex<Option<Arc<FutureProducer>>>,
    /// Topics confirmed or created, with `create_topic`: others are created
    /// before their first message.
    known_topics: Mutex<HashSet<String>>,
    /// Records skipped: `json` and `protobuf` carry audit events only.
    non_audit: Drops,
}

/// One planned message: where it goes, its bytes, and the records it carries
/// (indices into the batch).
struct Message {
    topic: String,
    key: Option<String>,
    value: Vec<u8>,
    /// `audit.id` and `audit.source` headers (`json`, `protobuf`).
    id: Option<String>,
    source: Option<String>,
    records: Vec<usize>,
}

/// Where a message goes: its topic and key.
type Route = (String, Option<String>);

/// A batch as messages, before any is sent.
#[derive(Default)]
struct Plan {
    messages: Vec<Message>,
    /// Records that cannot be sent at all, and why (permanent errors).
    refused: Vec<(Vec<usize>, PipelineError)>,
    /// Records that are not audit events (`json`, `protobuf` only).
    skipped: usize,
}

impl KafkaSender {
    /// A sender for a validated `config`.
    pub fn new(id: impl Into<String>, config: &KafkaExporterConfig) -> Self {
        let id: String = id.into();
        Self {
            non_audit: Telemetry::disabled().exporter_drops(&id, DropReason::NonAudit),
            id,
            topic: config.topic.clone(),
            topic_from_attribute: config.topic_from_attribute.clone(),
            key: config.key.clone(),
            encoding: config.encoding,
            max_message_bytes: config.max_message_bytes,
            create_topic: config.create_topic,
            producer_config: config.client.client_config(config.producer_properties()),
            admin_config: config.client.client_config([]),
            brokers: config.client.bootstrap_servers(),
            producer: Mutex::new(None),
            known_topics: Mutex::new(HashSet::new()),
        }
    }

    /// The same sender, counting the records it skips (not audit events,
    /// with `json` or `protobuf`) in `non_audit`.
    pub fn with_non_audit_drops(mut self, non_audit: Drops) -> Self {
        self.non_audit = non_audit;
        self
    }

    fn producer(&self) -> Option<Arc<FutureProducer>> {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn new_producer(&self) -> Result<FutureProducer, String> {
        self.producer_config.create().map_err(|e| {
            format!(
                "exporter {}: cannot create the Kafka producer: {e}",
                self.id
            )
        })
    }

    /// The topic of `record`: its `topic_from_attribute` value when present.
    fn topic_of<'a>(&'a self, record: &RecordRef<'a>) -> Result<&'a str, String> {
        let Some(attribute) = &self.topic_from_attribute else {
            return Ok(&self.topic);
        };
        match record
            .attribute(attribute)
            .or_else(|| record.resource_attribute(attribute))
        {
            Some(topic) => check_topic_name(topic)
                .map(|()| topic)
                .map_err(|e| format!("attribute {attribute} (topic_from_attribute): {e}")),
            None => Ok(&self.topic),
        }
    }

    fn key_of<'a>(&self, record: &RecordRef<'a>) -> Option<&'a str> {
        match &self.key {
            MessageKey::Type => record.audit_type(),
            MessageKey::None => None,
            MessageKey::Attribute(name) => record
                .attribute(name)
                .or_else(|| record.resource_attribute(name)),
        }
    }

    /// How an event is named in messages: its `audit.id`, or its place.
    fn event_name(record: &RecordRef<'_>, index: usize) -> String {
        match record.audit_id() {
            Some(id) => format!("event {id}"),
            None => format!("record {index} of the batch (no audit.id)"),
        }
    }

    /// Record `index` refused for good before it was sent, because `why`.
    fn refusal(
        &self,
        record: &RecordRef<'_>,
        index: usize,
        why: &str,
    ) -> (Vec<usize>, PipelineError) {
        (
            vec![index],
            PipelineError::permanent(format!(
                "exporter {}: {} cannot be sent: {why}",
                self.id,
                Self::event_name(record, index)
            )),
        )
    }

    fn plan(&self, batch: &LogBatch) -> Plan {
        if self.encoding.per_event() {
            self.plan_events(batch)
        } else {
            self.plan_batches(batch)
        }
    }

    /// `json`, `protobuf`: a message per audit event.
    fn plan_events(&self, batch: &LogBatch) -> Plan {
        let mut plan = Plan::default();
        for (index, record) in batch.records().enumerate() {
            let mut value = Vec::with_capacity(512);
            let refuse = |plan: &mut Plan, why: String| {
                plan.refused.push(self.refusal(&record, index, &why))
            };
            match self.encoding.write_event(&record, &mut value) {
                Ok(true) => {}
                Ok(false) => {
                    plan.skipped += 1;
                    continue;
                }
                Err(e) => {
                    refuse(&mut plan, e.0);
                    continue;
                }
            }
            if value.len() > self.max_message_bytes {
                let why = format!(
                    "it is {} bytes as {}, more than max_message_bytes ({})",
                    value.len(),
                    self.encoding,
                    self.max_message_bytes
                );
                refuse(&mut plan, why);
                continue;
            }
            let topic = match self.topic_of(&record) {
                Ok(topic) => topic.to_owned(),
                Err(why) => {
                    refuse(&mut plan, why);
                    continue;
                }
            };
            plan.messages.push(Message {
                topic,
                key: self.key_of(&record).map(str::to_owned),
                value,
                id: record.audit_id().map(str::to_owned),
                source: record.attribute(AUDIT_SOURCE).map(str::to_owned),
                records: vec![index],
            });
        }
        plan
    }

    /// `otlp_proto`, `otlp_json`: a message per group of records with the
    /// same topic and key, in the order groups first appear.
    fn plan_batches(&self, batch: &LogBatch) -> Plan {
        let mut plan = Plan::default();
        let mut groups: Vec<(Route, Vec<usize>)> = Vec::new();
        let mut group_of: HashMap<Route, usize> = HashMap::new();
        for (index, record) in batch.records().enumerate() {
            let topic = match self.topic_of(&record) {
                Ok(topic) => topic.to_owned(),
                Err(why) => {
                    plan.refused.push(self.refusal(&record, index, &why));
                    continue;
                }
            };
            let route = (topic, self.key_of(&record).map(str::to_owned));
            let group = *group_of.entry(route.clone()).or_insert_with(|| {
                groups.push((route, Vec::new()));
                groups.len() - 1
            });
            groups[group].1.push(index);
        }
        for ((topic, key), records) in groups {
            self.plan_group(batch, &topic, key.as_deref(), records, &mut plan);
        }
        plan
    }

    /// One message for `records`, or, when that is too large, messages for
    /// each half.
    fn plan_group(
        &self,
        batch: &LogBatch,
        topic: &str,
        key: Option<&str>,
        records: Vec<usize>,
        plan: &mut Plan,
    ) {
        let part = subset(batch, &records);
        let mut value = Vec::with_capacity(part.encoded_len() + 64);
        if let Err(e) = self.encoding.write_batch(&part, &mut value) {
            plan.refused.push((
                records,
                PipelineError::permanent(format!("exporter {}: {e}", self.id)),
            ));
            return;
        }
        if value.len() <= self.max_message_bytes {
            plan.messages.push(Message {
                topic: topic.to_owned(),
                key: key.map(str::to_owned),
                value,
                id: None,
                source: None,
                records,
            });
            return;
        }
        if let ([index], Some(record)) = (records.as_slice(), part.records().next()) {
            let why = format!(
                "alone it is {} bytes as {}, more than max_message_bytes ({})",
                value.len(),
                self.encoding,
                self.max_message_bytes
            );
            plan.refused.push(self.refusal(&record, *index, &why));
            return;
        }
        let mut first = records;
        let second = first.split_off(first.len() / 2);
        self.plan_group(batch, topic, key, first, plan);
        self.plan_group(batch, topic, key, second, plan);
    }

    /// With `create_topic`: creates the topics of `messages` not known yet.
    /// Returns the topics that could not be created, with the error.
    async fn ensure_topics(&self, messages: &[Message]) -> HashMap<String, PipelineError> {
        let Some(create) = self.create_topic else {
            return HashMap::new();
        };
        let wanted: Vec<String> = {
            let known = self
                .known_topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut wanted: Vec<String> = messages
                .iter()
                .map(|m| m.topic.clone())
                .filter(|t| !known.contains(t))
                .collect();
            wanted.sort();
            wanted.dedup();
            wanted
        };
        let mut failed = HashMap::new();
        if wanted.is_empty() {
            return failed;
        }
        match create_topics(
            &self.admin_config,
            &wanted,
            create.partitions,
            create.replication_factor,
            METADATA_TIMEOUT,
        )
        .await
        {
            Ok(()) => {
                tracing::info!(exporter = %self.id, topics = ?wanted, "topics ready (create_topic)");
                self.known_topics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(wanted);
            }
            Err(e) => {
                for topic in wanted {
                    failed.insert(
                        topic,
                        PipelineError::retryable(format!("exporter {}: {e}", self.id)),
                    );
                }
            }
        }
        failed
    }

    /// Hands every message to librdkafka in order, then waits for every
    /// delivery report. `None`: delivered.
    async fn deliver(
        &self,
        producer: &FutureProducer,
        messages: &[Message],
        mut outcomes: Vec<Option<PipelineError>>,
    ) -> Vec<Option<PipelineError>> {
        let mut reports = Vec::with_capacity(messages.len());
        for (n, message) in messages.iter().enumerate() {
            if outcomes[n].is_some() {
                continue;
            }
            let mut record: FutureRecord<'_, str, [u8]> =
                FutureRecord::to(&message.topic).payload(&message.value);
            if let Some(key) = &message.key {
                record = record.key(key.as_str());
            }
            if message.id.is_some() || message.source.is_some() {
                let mut headers = OwnedHeaders::new_with_capacity(2);
                for (name, value) in [
                    (HEADER_AUDIT_ID, &message.id),
                    (HEADER_AUDIT_SOURCE, &message.source),
                ] {
                    if let Some(value) = value {
                        headers = headers.insert(Header {
                            key: name,
                            value: Some(value.as_bytes()),
                        });
                    }
                }
                record = record.headers(headers);
            }
            loop {
                match producer.send_result(record) {
                    Ok(report) => {
                        reports.push((n, report));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue drains as earlier messages are delivered.
                        record = back;
                        tokio::time::sleep(QUEUE_FULL_WAIT).await;
                    }
                    Err((error, _)) => {
                        outcomes[n] = Some(self.failure(&error, message, &record_names(message)));
                        break;
                    }
                }
            }
        }
        for (n, report) in reports {
            let message = &messages[n];
            outcomes[n] = match report.await {
                Ok(Ok(_)) => None,
                Ok(Err((error, _))) => Some(self.failure(&error, message, &record_names(message))),
                Err(_) => Some(PipelineError::retryable(format!(
                    "exporter {}: the Kafka producer closed before the delivery report",
                    self.id
                ))),
            };
        }
        outcomes
    }

    fn failure(&self, error: &KafkaError, message: &Message, what: &str) -> PipelineError {
        let e = delivery_error(error, &message.topic, what);
        let text = format!("exporter {}: {}", self.id, e.message());
        if e.is_permanent() {
            PipelineError::permanent(text)
        } else {
            PipelineError::retryable(text)
        }
    }

    /// After a fatal error (the idempotent producer lost its guarantees),
    /// the producer is replaced: it refuses every message from then on.
    fn replace_if_fatal(&self, producer: &Arc<FutureProducer>) {
        let Some((code, reason)) = producer.client().fatal_error() else {
            return;
        };
        tracing::error!(exporter = %self.id, %code, reason, "the Kafka producer failed fatally; replacing it");
        match self.new_producer() {
            Ok(fresh) => {
                let mut slot = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, producer)) {
                    *slot = Some(Arc::new(fresh));
                }
            }
            Err(e) => {
                tracing::error!(exporter = %self.id, error = %e, "cannot replace the Kafka producer")
            }
        }
    }
}

/// How a message's records are named: `event <id>` or `a message of N records`.
fn record_names(message: &Message) -> String {
    match (&message.id, message.records.len()) {
        (Some(id), _) => format!("event {id}"),
        (None, 1) => "a message of 1 record".to_owned(),
        (None, n) => format!("a message of {n} records"),
    }
}

/// The records of `batch` at `indices`, as a batch.
fn subset(batch: &LogBatch, indices: &[usize]) -> LogBatch {
    let mut keep = vec![false; batch.len()];
    for &i in indices {
        keep[i] = true;
    }
    let mut part = batch.clone();
    part.retain_marked(&keep);
    part
}

#[async_trait]
impl BatchSender for KafkaSender {
    async fn start(&self) -> Result<(), StartError> {
        let producer = Arc::new(self.new_producer().map_err(StartError)?);
        let checking = producer.clone();
        let topics = vec![self.topic.clone()];
        let brokers = self.brokers.clone();
        let answer = tokio::task::spawn_blocking(move || {
            missing_topics(checking.client(), &topics, METADATA_TIMEOUT, &brokers)
        })
        .await
        .unwrap_or_else(|e| {
            Err(TopicCheckError::Unreachable {
                brokers: self.brokers.clone(),
                timeout: METADATA_TIMEOUT,
                reason: e.to_string(),
            })
        });
        match answer {
            Ok(missing) if missing.is_empty() => {
                self.known_topics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(self.topic.clone());
            }
            Ok(_) => match self.create_topic {
                Some(create) => {
                    create_topics(
                        &self.admin_config,
                        std::slice::from_ref(&self.topic),
                        create.partitions,
                        create.replication_factor,
                        METADATA_TIMEOUT,
                    )
                    .await
                    .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
                    tracing::info!(exporter = %self.id, topic = %self.topic, "created the topic (create_topic)");
                    self.known_topics
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(self.topic.clone());
                }
                None => {
                    return Err(StartError(format!(
                        "exporter {}: topic `{}` does not exist on the brokers {}: create it \
                         (kafka-topics.sh --create --topic {} ...), or set `create_topic` to let the exporter create it",
                        self.id, self.topic, self.brokers, self.topic
                    )));
                }
            },
            Err(e) => tracing::warn!(
                exporter = %self.id,
                error = %e,
                "cannot check the topic; starting anyway: events wait in the sending queue and are retried until the brokers answer"
            ),
        }
        *self.producer.lock().unwrap_or_else(PoisonError::into_inner) = Some(producer);
        tracing::info!(exporter = %self.id, brokers = %self.brokers, topic = %self.topic, encoding = %self.encoding, "producing to Kafka");
        Ok(())
    }

    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        let Some(producer) = self.producer() else {
            return Err(
                PipelineError::retryable(format!("exporter {}: not started", self.id)).into(),
            );
        };
        let plan = self.plan(batch);
        self.non_audit.add(
            plan.skipped,
            &format_args!(
                "encoding `{}` carries audit events only (otlp_proto and otlp_json keep every record)",
                self.encoding
            ),
        );
        let not_created = self.ensure_topics(&plan.messages).await;
        let outcomes = plan
            .messages
            .iter()
            .map(|m| not_created.get(&m.topic).cloned())
            .collect();
        let outcomes = self.deliver(&producer, &plan.messages, outcomes).await;
        self.replace_if_fatal(&producer);

        let mut failure = PartialFailure::default();
        for (records, error) in plan.refused {
            tracing::warn!(exporter = %self.id, audit_ids = %batch.audit_ids_at(&records), error = error.message(), "refused for good: not sent");
            failure.reject(records.len(), error);
        }
        let mut remaining = vec![false; batch.len()];
        let mut retry_error = None;
        let mut delivered = 0;
        for (message, outcome) in plan.messages.iter().zip(outcomes) {
            match outcome {
                None => delivered += message.records.len(),
                Some(error) if error.is_permanent() => {
                    tracing::warn!(exporter = %self.id, audit_ids = %batch.audit_ids_at(&message.records), error = error.message(), "the brokers refused for good: not sent again");
                    failure.reject(message.records.len(), error);
                }
                Some(error) => {
                    for &index in &message.records {
                        remaining[index] = true;
                    }
                    retry_error.get_or_insert(error);
                }
            }
        }
        failure.finish(batch, &remaining, retry_error, delivered)
    }

    async fn shutdown(&self) {
        let producer = self
            .producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(producer) = producer {
            // Every send waited for its reports: nothing is outstanding. The
            // flush and the drop (which joins librdkafka's threads) block.
            let _ = tokio::task::spawn_blocking(move || {
                let _ = producer.flush(Duration::from_secs(5));
                drop(producer);
            })
            .await;
        }
    }

    async fn check_connectivity(&self) -> Connectivity {
        let hint = if self.create_topic.is_some() {
            "create_topic creates it at start"
        } else {
            "create it, or set `create_topic`"
        };
        match check_topics(
            &self.admin_config,
            std::slice::from_ref(&self.topic),
            METADATA_TIMEOUT,
            hint,
        )
        .await
        {
            Ok(()) => Connectivity::Reachable(format!(
                "brokers {} answer; topic `{}` exists",
                self.brokers, self.topic
            )),
            Err(TopicCheckError::Missing { .. }) if self.create_topic.is_some() => {
                Connectivity::Reachable(format!(
                    "brokers {} answer; topic `{}` does not exist yet: create_topic creates it at start",
                    self.brokers, self.topic
                ))
            }
            Err(e) => Connectivity::Unreachable(e.to_string()),
        }
    }
}
