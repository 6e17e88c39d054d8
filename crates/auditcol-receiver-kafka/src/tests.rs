//! The receiver against librdkafka's mock cluster (Kafka protocol on
//! loopback, consumer groups included), with a scripted pipeline.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use auditcol_core::model::AuditEvent;
use auditcol_core::{LogBatch, LogsConsumer, PipelineError};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::Semaphore;

use super::*;

type Mock = MockCluster<'static, DefaultProducerContext>;

fn mock(topics: &[(&str, i32)]) -> Mock {
    let mock = MockCluster::new(1).unwrap();
    for (topic, partitions) in topics {
        mock.create_topic(topic, *partitions, 1).unwrap();
    }
    mock
}

/// A pipeline that records what it is given and answers from a script
/// (then `Ok`); while `gate` has no permit, it holds every batch.
#[derive(Default)]
struct Pipeline {
    attempts: Mutex<Vec<Vec<String>>>,
    answers: Mutex<VecDeque<Result<(), PipelineError>>>,
    accepted: Mutex<Vec<String>>,
    gate: Option<Semaphore>,
}

impl Pipeline {
    fn answering(answers: impl IntoIterator<Item = Result<(), PipelineError>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into_iter().collect()),
            ..Self::default()
        })
    }

    fn gated() -> Arc<Self> {
        Arc::new(Self {
            gate: Some(Semaphore::new(0)),
            ..Self::default()
        })
    }

    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }

    fn attempts(&self) -> Vec<Vec<String>> {
        self.attempts.lock().unwrap().clone()
    }
}

#[async_trait]
impl LogsConsumer for Pipeline {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        let keys: Vec<String> = batch
            .records()
            .map(|r| r.body_json()["key"].as_str().unwrap_or("?").to_owned())
            .collect();
        self.attempts.lock().unwrap().push(keys.clone());
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
        if answer.is_ok() {
            self.accepted.lock().unwrap().extend(keys);
        }
        answer
    }
}

fn receiver(
    mock: &Mock,
    group: &str,
    settings: serde_json::Value,
    next: Arc<Pipeline>,
) -> KafkaReceiver {
    let mut config = json!({
        "brokers": [mock.bootstrap_servers()],
        "topics": ["audit-events"],
        "group_id": group,
        "session_timeout": "6s",
        "heartbeat_interval": "500ms",
        "commit_interval": "100ms",
    });
    for (k, v) in settings.as_object().unwrap() {
        config[k] = v.clone();
    }
    KafkaReceiver::new(
        ComponentId::new("kafka", Some("gateway")),
        KafkaReceiverConfig::parse(&config).unwrap(),
        next,
    )
}

/// A Flipt JSON event whose payload key is `key`.
fn event_json(key: &str) -> Vec<u8> {
    let mut event = AuditEvent::new("flag", "created");
    event.payload = json!({ "key": key });
    serde_json::to_vec(&event).unwrap()
}

async fn produce(mock: &Mock, topic: &str, values: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    for value in values {
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(value);
        producer.send(record, Duration::from_secs(5)).await.unwrap();
    }
}

/// Produces the events `k0`… `k<n-1>` to `audit-events`.
async fn produce_keys(mock: &Mock, n: usize) {
    let values: Vec<Vec<u8>> = keys(n).iter().map(|k| event_json(k)).collect();
    produce(mock, "audit-events", &values).await;
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The group's committed offset of partition 0 of `topic` (`None`: nothing committed).
async fn committed(mock: &Mock, group: &str, topic: &str) -> Option<i64> {
    let bootstrap = mock.bootstrap_servers();
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition(&topic, 0);
        let offsets = consumer
            .committed_offsets(list, Duration::from_secs(5))
            .unwrap();
        match offsets.elements()[0].offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    })
    .await
    .unwrap()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_the_pipeline_and_their_offsets_are_committed_after_it_acknowledged() {
    let mock = mock(&[("audit-events", 1)]);
    produce_keys(&mock, 5).await;
    let pipeline = Pipeline::answering([]);
    let receiver = receiver(&mock, "g1", json!({}), pipeline.clone());
    receiver.start().await.unwrap();
    eventually("5 records accepted", || pipeline.accepted().len() == 5).await;
    assert_eq!(pipeline.accepted(), keys(5));
    let mut committed_offset = None;
    for _ in 0..100 {
        committed_offset = committed(&mock, "g1", "audit-events").await;
        if committed_offset == Some(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(committed_offset, Some(5));
    assert_eq!(receiver.counters().accepted_records(), 5);
    // Records carry the receiver's name as their source, and an id.
    receiver.shutdown(deadline()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_skipped_and_counted_and_does_not_block_the_partition() {
    let mock = mock(&[("audit-events", 1)]);
    let values = vec![
        event_json("a"),
        b"{not json".to_vec(),
        Vec::new(),
        event_json("b"),
    ];
    produce(&mock, "audit-events", &values).await;
    let pipeline = Pipeline::answering([]);
    let receiver = receiver(&mock, "g2", json!({}), pipeline.clone());
    receiver.start().await.unwrap();
    eventually("both good records", || pipeline.accepted().len() == 2).await;
    assert_eq!(pipeline.accepted(), ["a", "b"]);
    assert_eq!(receiver.counters().undecodable_messages(), 2);
    receiver.shutdown(deadline()).await;
    assert_eq!(committed(&mock, "g2", "audit-events").await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_topic_with_where_it_came_from() {
    let mock = mock(&[("audit-events", 1), ("audit-dlq", 1)]);
    produce(
        &mock,
        "audit-events",
        &[b"garbage".to_vec(), event_json("a")],
    )
    .await;
    let pipeline = Pipeline::answering([]);
    let receiver = receiver(
        &mock,
        "g3",
        json!({"dead_letter_topic": "audit-dlq"}),
        pipeline.clone(),
    );
    receiver.start().await.unwrap();
    eventually("the good record", || pipeline.accepted().len() == 1).await;
    eventually("one dead letter", || {
        receiver.counters().dead_lettered_messages() == 1
    })
    .await;
    receiver.shutdown(deadline()).await;
    let letters = read_all(&mock, "audit-dlq", 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload(), Some(&b"garbage"[..]));
    let header = |name: &str| {
        letters[0]
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| String::from_utf8(h.value?.to_vec()).ok())
    };
    assert_eq!(header("auditcol.topic").as_deref(), Some("audit-events"));
    assert_eq!(header("auditcol.offset").as_deref(), Some("0"));
    assert!(
        header("auditcol.error")
            .unwrap()
            .contains("not a Flipt v0.2 JSON event")
    );
    assert_eq!(committed(&mock, "g3", "audit-events").await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_refused_for_good_go_to_the_dead_letter_topic_when_there_is_one() {
    let mock = mock(&[("audit-events", 1), ("audit-dlq", 1)]);
    produce_keys(&mock, 1).await;
    let pipeline = Pipeline::answering([Err(PipelineError::permanent("rejected by the SIEM"))]);
    let receiver = receiver(
        &mock,
        "g11",
        json!({"dead_letter_topic": "audit-dlq"}),
        pipeline.clone(),
    );
    receiver.start().await.unwrap();
    eventually("one dead letter", || {
        receiver.counters().dead_lettered_messages() == 1
    })
    .await;
    receiver.shutdown(deadline()).await;
    let letters = read_all(&mock, "audit-dlq", 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload(), Some(&event_json("k0")[..]));
    let error = letters[0]
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == "auditcol.error"))
        .and_then(|h| String::from_utf8(h.value?.to_vec()).ok())
        .unwrap();
    assert!(
        error.contains("refused by the pipeline: rejected by the SIEM"),
        "{error}"
    );
    assert_eq!(committed(&mock, "g11", "audit-events").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_pipeline_refuses_for_now_is_sent_again_and_committed_only_once_accepted() {
    let mock = mock(&[("audit-events", 1)]);
    produce_keys(&mock, 3).await;
    let pipeline = Pipeline::answering([
        Err(PipelineError::retryable("exporter down")),
        Err(PipelineError::backpressure(
            "queue full",
            Some(Duration::from_millis(200)),
        )),
        Err(PipelineError::retryable("exporter down")),
    ]);
    let receiver = receiver(&mock, "g4", json!({}), pipeline.clone());
    receiver.start().await.unwrap();
    eventually("a third refusal", || pipeline.attempts().len() >= 3).await;
    assert!(pipeline.accepted().is_empty());
    assert_eq!(
        committed(&mock, "g4", "audit-events").await,
        None,
        "committed before the pipeline accepted"
    );
    eventually("accepted", || pipeline.accepted().len() == 3).await;
    let attempts = pipeline.attempts();
    // The first batch was offered four times (three refusals, then accepted).
    assert!(
        attempts[..4].iter().all(|a| *a == attempts[0]),
        "the same batch each time: {attempts:?}"
    );
    assert_eq!(pipeline.accepted(), keys(3), "each once, in order");
    receiver.shutdown(deadline()).await;
    assert_eq!(committed(&mock, "g4", "audit-events").await, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_refused_for_good_are_skipped_and_counted() {
    let mock = mock(&[("audit-events", 1)]);
    produce(&mock, "audit-events", &[event_json("a"), event_json("b")]).await;
    let pipeline = Pipeline::answering([Err(PipelineError::permanent("rejected by the SIEM"))]);
    let receiver = receiver(&mock, "g5", json!({}), pipeline.clone());
    receiver.start().await.unwrap();
    eventually("refused, then the rest accepted", || {
        receiver.counters().refused_records() + receiver.counters().accepted_records() == 2
    })
    .await;
    assert!(receiver.counters().refused_records() >= 1);
    receiver.shutdown(deadline()).await;
    assert_eq!(committed(&mock, "g5", "audit-events").await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pipeline_pauses_reading_instead_of_buffering_and_nothing_is_lost() {
    let mock = mock(&[("audit-events", 1)]);
    produce_keys(&mock, 200).await;
    let pipeline = Pipeline::gated();
    let receiver = receiver(
        &mock,
        "g6",
        json!({"max_batch_messages": 10}),
        pipeline.clone(),
    );
    receiver.start().await.unwrap();
    eventually("a batch in the pipeline", || {
        !pipeline.attempts().is_empty()
    })
    .await;
    // The pipeline holds its batch: reading stops once the next batch is buffered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let read = receiver.counters().messages();
    assert!(
        read <= 40,
        "read {read} messages while the pipeline held one batch"
    );
    // Read but not committable yet: the batch in the pipeline and the buffer.
    eventually("the commit lag counts what is held", || {
        receiver.counters().commit_lag() >= 10
    })
    .await;
    pipeline.gate.as_ref().unwrap().add_permits(1000);
    eventually("everything", || pipeline.accepted().len() == 200).await;
    assert_eq!(pipeline.accepted(), keys(200), "in order, each once");
    eventually("no commit lag once all is stored", || {
        receiver.counters().commit_lag() == 0
    })
    .await;
    receiver.shutdown(deadline()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_accepted_while_the_receiver_stops_is_committed() {
    let mock = mock(&[("audit-events", 1)]);
    produce_keys(&mock, 3).await;
    let pipeline = Pipeline::gated();
    let receiver = Arc::new(receiver(&mock, "g10", json!({}), pipeline.clone()));
    receiver.start().await.unwrap();
    eventually("a batch in the pipeline", || {
        !pipeline.attempts().is_empty()
    })
    .await;
    let stopping = tokio::spawn({
        let receiver = receiver.clone();
        async move { receiver.shutdown(deadline()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "stopped without waiting for the batch in the pipeline"
    );
    pipeline.gate.as_ref().unwrap().add_permits(100);
    stopping.await.unwrap();
    let accepted = pipeline.accepted().len() as i64;
    assert!(accepted >= 1);
    assert_eq!(
        committed(&mock, "g10", "audit-events").await,
        Some(accepted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_stopped_mid_batch_leaves_it_for_the_next_member_of_the_group() {
    let mock = mock(&[("audit-events", 1)]);
    produce_keys(&mock, 3).await;
    // The first member's pipeline never answers: it is stopped mid-batch.
    let stuck = Pipeline::gated();
    let first = receiver(&mock, "g7", json!({}), stuck.clone());
    first.start().await.unwrap();
    eventually("a batch in the first pipeline", || {
        !stuck.attempts().is_empty()
    })
    .await;
    first
        .shutdown(tokio::time::Instant::now() + Duration::from_millis(500))
        .await;
    assert_eq!(committed(&mock, "g7", "audit-events").await, None);
    produce(&mock, "audit-events", &[event_json("k3")]).await;
    let pipeline = Pipeline::answering([]);
    let second = receiver(&mock, "g7", json!({}), pipeline.clone());
    second.start().await.unwrap();
    eventually("all four records", || pipeline.accepted().len() == 4).await;
    assert_eq!(pipeline.accepted(), keys(4));
    second.shutdown(deadline()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_and_otlp_messages_keep_their_event_ids() {
    use auditcol_kafka::Encoding;
    for encoding in [Encoding::Protobuf, Encoding::OtlpProto] {
        let mock = mock(&[("audit-events", 1)]);
        let mut batch = LogBatch::sample_audit(2);
        batch.prepare_ingest(1, "agent-1");
        let ids: Vec<String> = batch
            .records()
            .map(|r| r.audit_id().unwrap().to_owned())
            .collect();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .create()
            .unwrap();
        let mut values = Vec::new();
        if encoding.per_event() {
            for record in batch.records() {
                let mut v = Vec::new();
                encoding.write_event(&record, &mut v).unwrap();
                values.push((v, record.audit_id().map(str::to_owned)));
            }
        } else {
            let mut v = Vec::new();
            encoding.write_batch(&batch, &mut v).unwrap();
            values.push((v, None));
        }
        for (value, id) in &values {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to("audit-events").payload(value);
            if let Some(id) = id {
                record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
                    rdkafka::message::Header {
                        key: "audit.id",
                        value: Some(id.as_bytes()),
                    },
                ));
            }
            producer.send(record, Duration::from_secs(5)).await.unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        struct Ids(Arc<Mutex<Vec<(String, String)>>>);
        #[async_trait]
        impl LogsConsumer for Ids {
            async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
                let mut seen = self.0.lock().unwrap();
                for r in batch.records() {
                    seen.push((
                        r.audit_id().unwrap_or("-").to_owned(),
                        r.attribute("audit.source").unwrap_or("-").to_owned(),
                    ));
                }
                Ok(())
            }
        }
        let config = KafkaReceiverConfig::parse(&json!({
            "brokers": [mock.bootstrap_servers()], "group_id": "ids", "encoding": encoding.name(),
            "session_timeout": "6s", "heartbeat_interval": "500ms",
        }))
        .unwrap();
        let receiver = KafkaReceiver::new(
            ComponentId::new("kafka", None),
            config,
            Arc::new(Ids(seen.clone())),
        );
        receiver.start().await.unwrap();
        eventually("two records", || seen.lock().unwrap().len() == 2).await;
        let seen = seen.lock().unwrap().clone();
        let got: Vec<String> = seen.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(got, ids, "{encoding}");
        let sources: HashMap<_, _> = seen.iter().map(|(_, s)| (s.clone(), ())).collect();
        // protobuf without an audit.source header: the receiver's own name;
        // OTLP records carry theirs.
        let expected = if encoding.per_event() {
            "kafka"
        } else {
            "test"
        };
        assert!(sources.contains_key(expected), "{encoding}: {seen:?}");
        receiver.shutdown(deadline()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_initial_offset_latest_a_new_group_starts_after_what_was_there() {
    let mock = mock(&[("audit-events", 1)]);
    produce(&mock, "audit-events", &[event_json("old")]).await;
    let pipeline = Pipeline::answering([]);
    let receiver = receiver(
        &mock,
        "g9",
        json!({"initial_offset": "latest"}),
        pipeline.clone(),
    );
    receiver.start().await.unwrap();
    // The group's position is set once it has joined: produce until one arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while pipeline.accepted().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing new arrived"
        );
        produce(&mock, "audit-events", &[event_json(&format!("new{n}"))]).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = pipeline.accepted();
    assert!(!accepted.contains(&"old".to_owned()), "{accepted:?}");
    assert!(
        accepted.iter().all(|k| k.starts_with("new")),
        "{accepted:?}"
    );
    receiver.shutdown(deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_a_clear_error_at_start_and_in_the_connectivity_check() {
    let mock = mock(&[]);
    let receiver = receiver(
        &mock,
        "g8",
        json!({"topics": ["nowhere"]}),
        Pipeline::answering([]),
    );
    match receiver.check_connectivity().await {
        Connectivity::Unreachable(why) => {
            assert!(why.contains("topic `nowhere` does not exist"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    let err = receiver.start().await.unwrap_err();
    assert!(
        err.0
            .contains("receiver kafka/gateway: topic `nowhere` does not exist"),
        "{}",
        err.0
    );
}

async fn read_all(mock: &Mock, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let bootstrap = mock.bootstrap_servers();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut messages = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while messages.len() < expected && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                messages.push(m.detach());
            }
        }
        messages
    })
    .await
    .unwrap()
}
