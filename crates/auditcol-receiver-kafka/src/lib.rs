//! The `kafka` receiver: audit events from Kafka topics, read by a member
//! of a consumer group — how a group of gateway collectors shares the
//! events that many agents export to a topic, and how auditcol reads what
//! Flipt's Kafka sink produces.
//!
//! ```yaml
//! receivers:
//!   kafka:
//!     brokers: ["kafka-1:9092"]
//!     topics: [audit-events]   # default
//!     group_id: auditcol       # default
//!     encoding: json           # json | protobuf | otlp_proto | otlp_json
//! ```
//!
//! At least once: an offset is committed only after the pipeline
//! acknowledged the records before it (see `consumer` for the loop). A
//! message that cannot be decoded is logged with its topic, partition and
//! offset, counted, and skipped — or written to `dead_letter_topic` — and
//! never blocks its partition.
//!
//! The factory only parses the config; the consumer is created and joins
//! its group in [`Component::start`], and leaves it in
//! [`Component::shutdown`] after committing what the pipeline acknowledged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auditcol_core::component::{Connectivity, StartError};
use auditcol_core::config::ConfigError;
use auditcol_core::telemetry::Telemetry;
use auditcol_core::{
    BuildContext, Component, ComponentId, Receiver, ReceiverFactory, SharedConsumer,
};
use auditcol_kafka::{TopicCheckError, check_topics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub mod config;
mod consumer;

pub use config::{InitialOffset, KafkaReceiverConfig};
pub use consumer::{KafkaReceiverCounters, METRICS};

use consumer::{ConsumerLoop, DeadLetters, ReceiverContext};

/// The type name in component ids: `kafka`, `kafka/<name>`.
pub const TYPE_NAME: &str = "kafka";

/// How long the topic check at start may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds `kafka` receivers.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaReceiverFactory;

impl ReceiverFactory for KafkaReceiverFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Receiver>, ConfigError> {
        let config = KafkaReceiverConfig::parse(config)?;
        ctx.record_effective(auditcol_kafka::effective_config(&config.client, &config));
        Ok(Arc::new(
            KafkaReceiver::new(ctx.id.clone(), config, next).with_telemetry(&ctx.telemetry),
        ))
    }
}

/// A kafka receiver: a consumer group member between
/// [`Component::start`] and [`Component::shutdown`].
pub struct KafkaReceiver {
    id: ComponentId,
    config: KafkaReceiverConfig,
    /// `audit.source` of records that do not carry one.
    source: String,
    next: SharedConsumer,
    counters: Arc<KafkaReceiverCounters>,
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl KafkaReceiver {
    /// A receiver sending to `next`; nothing connects until `start`.
    /// `config` must have been validated (the factory does it).
    ///
    /// Records that do not carry an `audit.source` (events from a producer
    /// other than auditcol, such as Flipt's sink) get the receiver's name
    /// (`kafka/flipt` → `flipt`), or `kafka` for an unnamed receiver.
    pub fn new(id: ComponentId, config: KafkaReceiverConfig, next: SharedConsumer) -> Self {
        let source = id.name().unwrap_or(TYPE_NAME).to_owned();
        Self {
            counters: Arc::new(KafkaReceiverCounters::new(&Telemetry::disabled(), &id)),
            id,
            config,
            source,
            next,
            running: Mutex::new(None),
        }
    }

    /// The same receiver, counting in `telemetry`: records accepted and
    /// refused, undecodable messages, dead letters, the commit lag.
    pub fn with_telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.counters = Arc::new(KafkaReceiverCounters::new(telemetry, &self.id));
        self
    }

    /// What the receiver did so far.
    pub fn counters(&self) -> &KafkaReceiverCounters {
        &self.counters
    }

    /// The topics that must exist: those read, and the dead-letter topic.
    fn needed_topics(&self) -> Vec<String> {
        let mut topics = self.config.topics.clone();
        topics.extend(self.config.dead_letter_topic.clone());
        topics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Component for KafkaReceiver {
    async fn start(&self) -> Result<(), StartError> {
        if self.lock().is_some() {
            return Err(StartError(format!(
                "receiver {} is already started",
                self.id
            )));
        }
        let client = &self.config.client;
        match check_topics(
            &client.client_config([]),
            &self.needed_topics(),
            METADATA_TIMEOUT,
            "create it (kafka-topics.sh --create ...) before starting the receiver",
        )
        .await
        {
            Ok(()) => {}
            Err(e @ TopicCheckError::Missing { .. }) => {
                return Err(StartError(format!("receiver {}: {e}", self.id)));
            }
            Err(e) => tracing::warn!(
                receiver = %self.id,
                error = %e,
                "cannot check the topics; starting anyway: the consumer joins its group once the brokers answer"
            ),
        }
        let consumer: StreamConsumer<ReceiverContext> = client
            .client_config(self.config.consumer_properties())
            .create_with_context(ReceiverContext::new(self.id.to_string()))
            .map_err(|e| {
                StartError(format!(
                    "receiver {}: cannot create the Kafka consumer: {e}",
                    self.id
                ))
            })?;
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            StartError(format!(
                "receiver {}: cannot subscribe to {}: {e}",
                self.id,
                topics.join(", ")
            ))
        })?;
        let dead_letters = match &self.config.dead_letter_topic {
            None => None,
            Some(topic) => {
                let producer = client
                    .client_config([
                        ("acks", "all".to_owned()),
                        ("enable.idempotence", "true".to_owned()),
                        ("allow.auto.create.topics", "false".to_owned()),
                    ])
                    .create()
                    .map_err(|e| {
                        StartError(format!(
                            "receiver {}: cannot create the dead-letter producer: {e}",
                            self.id
                        ))
                    })?;
                Some(Arc::new(DeadLetters {
                    topic: topic.clone(),
                    producer,
                }))
            }
        };
        let stop = CancellationToken::new();
        let run = ConsumerLoop {
            id: self.id.to_string(),
            source: self.source.clone(),
            encoding: self.config.encoding,
            max_batch_messages: self.config.max_batch_messages,
            next: self.next.clone(),
            consumer: Arc::new(consumer),
            dead_letters,
            counters: self.counters.clone(),
        }
        .run(stop.clone());
        let task = tokio::spawn(run);
        tracing::info!(
            receiver = %self.id,
            brokers = %client.bootstrap_servers(),
            topics = %self.config.topics.join(","),
            group_id = %self.config.group_id,
            encoding = %self.config.encoding,
            "consuming from Kafka"
        );
        *self.lock() = Some(Running { stop, task });
        Ok(())
    }

    async fn shutdown(&self, deadline: Instant) {
        let Some(mut running) = self.lock().take() else {
            return;
        };
        // Stop reading; the batch in the pipeline runs to its answer, then
        // the consumer commits what was acknowledged and leaves the group.
        running.stop.cancel();
        if tokio::time::timeout_at(deadline, &mut running.task)
            .await
            .is_err()
        {
            tracing::warn!(receiver = %self.id, "shutdown deadline reached with a batch still in the pipeline: its offsets are not committed, it is read again at the next start");
            running.task.abort();
        }
    }

    async fn check_connectivity(&self) -> Connectivity {
        let client = &self.config.client;
        let topics = self.needed_topics();
        match check_topics(
            &client.client_config([]),
            &topics,
            METADATA_TIMEOUT,
            "create it before starting the receiver",
        )
        .await
        {
            Ok(()) => Connectivity::Reachable(format!(
                "brokers {} answer; {} {} exist{}",
                client.bootstrap_servers(),
                if topics.len() == 1 { "topic" } else { "topics" },
                topics
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if topics.len() == 1 { "s" } else { "" },
            )),
            Err(e) => Connectivity::Unreachable(e.to_string()),
        }
    }
}

impl Receiver for KafkaReceiver {}

#[cfg(test)]
mod tests;
