//! The exporter against librdkafka's mock cluster (real Kafka protocol on
//! loopback, with fault injection), read back by a plain consumer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditcol_core::LogBatch;
use auditcol_core::component::{BuildContext, ComponentId, Exporter, ExporterFactory};
use auditcol_core::model::AuditEvent;
use auditcol_kafka::{Encoding, EventHeaders};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::json;

use super::*;

type Mock = MockCluster<'static, DefaultProducerContext>;

fn mock(brokers: i32, topics: &[(&str, i32)]) -> Mock {
    let mock = MockCluster::new(brokers).unwrap();
    for (topic, partitions) in topics {
        mock.create_topic(topic, *partitions, 1).unwrap();
    }
    mock
}

/// A started exporter with `settings` (JSON) on the mock cluster; fast retries.
async fn exporter(mock: &Mock, settings: serde_json::Value) -> Arc<dyn Exporter> {
    let mut config = json!({
        "brokers": [mock.bootstrap_servers()],
        "timeout": "2s",
        "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms", "randomization_factor": 0},
    });
    for (k, v) in settings.as_object().unwrap() {
        config[k] = v.clone();
    }
    let ctx = BuildContext::new(ComponentId::new("kafka", None));
    let exporter = KafkaExporterFactory.build(&ctx, &config).unwrap();
    exporter.start().await.unwrap();
    exporter
}

/// Every message of `topic`, from the beginning, once `expected` arrived
/// and nothing more came for a moment (to see duplicates too).
fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => messages.push(m.detach()),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
        if messages.len() >= expected {
            let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_millis(500));
            if Instant::now() >= until {
                break;
            }
        }
    }
    messages
}

async fn read(mock: &Mock, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let bootstrap = mock.bootstrap_servers();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, expected))
        .await
        .unwrap()
}

fn header<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Audit events with ids, sources and payloads, as after ingest.
fn events(n: usize) -> LogBatch {
    let mut batch = LogBatch::sample_audit(n);
    batch.prepare_ingest(1_714_557_600_000_000_000, "flipt");
    batch
}

fn ids(batch: &LogBatch) -> Vec<String> {
    batch
        .records()
        .map(|r| r.audit_id().unwrap().to_owned())
        .collect()
}

/// How many times each audit id arrived, decoding messages in `encoding`.
fn arrivals(messages: &[OwnedMessage], encoding: Encoding) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in messages {
        let headers = EventHeaders {
            id: header(m, "audit.id"),
            source: header(m, "audit.source"),
        };
        let batch = encoding
            .decode(m.payload().unwrap(), headers, "kafka")
            .unwrap();
        for record in batch.records() {
            *seen
                .entry(record.audit_id().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    seen
}

fn exactly_once(seen: &HashMap<String, usize>, ids: &[String]) {
    assert_eq!(seen.len(), ids.len(), "{seen:?}");
    for id in ids {
        assert_eq!(seen.get(id), Some(&1), "{id}: {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_are_flipts_json_keyed_by_noun_with_id_and_source_headers() {
    let mock = mock(1, &[("audit-events", 2)]);
    let exporter = exporter(&mock, json!({})).await;
    let batch = events(4);
    exporter.consume(batch.clone()).await.unwrap();
    let messages = read(&mock, "audit-events", 4).await;
    assert_eq!(messages.len(), 4);
    for record in batch.records() {
        let id = record.audit_id().unwrap();
        let message = messages
            .iter()
            .find(|m| header(m, "audit.id") == Some(id))
            .unwrap_or_else(|| panic!("no message for {id}"));
        let mut json = Vec::new();
        record.write_audit_json(&mut json);
        assert_eq!(message.payload(), Some(&json[..]));
        assert_eq!(message.key(), Some(record.audit_type().unwrap().as_bytes()));
        assert_eq!(
            header(message, "audit.source"),
            Some("test"),
            "the source sample_audit gives"
        );
    }
    exporter
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_encoding_delivers_every_record_once_as_the_receiver_decodes_it() {
    let mock = mock(
        1,
        &[
            ("json", 1),
            ("protobuf", 1),
            ("otlp_proto", 1),
            ("otlp_json", 1),
        ],
    );
    for encoding in [
        Encoding::Json,
        Encoding::Protobuf,
        Encoding::OtlpProto,
        Encoding::OtlpJson,
    ] {
        let exporter = exporter(
            &mock,
            json!({"topic": encoding.name(), "encoding": encoding.name(), "key": "none"}),
        )
        .await;
        let batch = events(5);
        exporter.consume(batch.clone()).await.unwrap();
        let expected_messages = if encoding.per_event() { 5 } else { 1 };
        let messages = read(&mock, encoding.name(), expected_messages).await;
        assert_eq!(messages.len(), expected_messages, "{encoding}");
        exactly_once(&arrivals(&messages, encoding), &ids(&batch));
        // The events themselves survive.
        let mut decoded = LogBatch::new();
        for m in &messages {
            let headers = EventHeaders {
                id: header(m, "audit.id"),
                source: header(m, "audit.source"),
            };
            decoded.merge(
                encoding
                    .decode(m.payload().unwrap(), headers, "kafka")
                    .unwrap(),
            );
        }
        let events: Vec<AuditEvent> = decoded
            .records()
            .filter_map(|r| r.to_audit_event())
            .collect();
        let sent: Vec<AuditEvent> = batch.records().filter_map(|r| r.to_audit_event()).collect();
        assert_eq!(events, sent, "{encoding}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_event_encodings_skip_records_that_are_not_audit_events() {
    let mock = mock(1, &[("audit-events", 1)]);
    let exporter = exporter(&mock, json!({"encoding": "protobuf"})).await;
    // One audit event and one application log record.
    exporter.consume(LogBatch::sample_varied()).await.unwrap();
    let messages = read(&mock, "audit-events", 1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].key(), Some(&b"flag"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_key_come_from_attributes_when_present() {
    let mock = mock(1, &[("audit-events", 1), ("tenant-b", 1)]);
    let exporter = exporter(
        &mock,
        json!({"topic_from_attribute": "tenant.topic", "key": "attribute:tenant.id", "encoding": "otlp_json"}),
    )
    .await;
    let a = AuditEvent::new("flag", "created");
    let b = AuditEvent::new("flag", "deleted");
    let mut batch = LogBatch::try_from_events_with_attributes(
        "test",
        [
            (&a, vec![("tenant.id", "a")]),
            (&b, vec![("tenant.topic", "tenant-b"), ("tenant.id", "b")]),
            (&a, vec![("tenant.id", "a")]),
        ],
    )
    .unwrap();
    batch.prepare_ingest(1, "test");
    exporter.consume(batch).await.unwrap();
    let default = read(&mock, "audit-events", 1).await;
    assert_eq!(
        default.len(),
        1,
        "one message for the two records of tenant a"
    );
    assert_eq!(default[0].key(), Some(&b"a"[..]));
    let mut one = LogBatch::new();
    one.merge(
        Encoding::OtlpJson
            .decode(default[0].payload().unwrap(), EventHeaders::default(), "k")
            .unwrap(),
    );
    assert_eq!(one.len(), 2);
    let routed = read(&mock, "tenant-b", 1).await;
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].key(), Some(&b"b"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_topic_from_an_attribute_refuses_that_record_for_good() {
    let mock = mock(1, &[("audit-events", 1)]);
    let exporter = exporter(&mock, json!({"topic_from_attribute": "tenant.topic"})).await;
    let e = AuditEvent::new("flag", "created");
    let mut batch = LogBatch::try_from_events_with_attributes(
        "test",
        [(&e, vec![("tenant.topic", "no/such topic")]), (&e, vec![])],
    )
    .unwrap();
    batch.prepare_ingest(1, "test");
    let bad_id = batch
        .records()
        .next()
        .unwrap()
        .audit_id()
        .unwrap()
        .to_owned();
    let err = exporter.consume(batch).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(
        err.message().contains("1 of 2 records were refused"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains(&bad_id) && err.message().contains("tenant.topic"),
        "{}",
        err.message()
    );
    assert_eq!(read(&mock, "audit-events", 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_max_message_bytes_is_refused_naming_it_and_the_others_go() {
    let mock = mock(1, &[("audit-events", 1)]);
    let exporter = exporter(&mock, json!({"max_message_bytes": 2048})).await;
    let mut big = AuditEvent::new("flag", "updated");
    big.payload = json!({"description": "x".repeat(4000)});
    let small = AuditEvent::new("flag", "created");
    let mut batch = LogBatch::from_events("test", [&small, &big, &small]);
    batch.prepare_ingest(1, "test");
    let big_id = batch
        .records()
        .nth(1)
        .unwrap()
        .audit_id()
        .unwrap()
        .to_owned();
    let err = exporter.consume(batch).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.message().contains(&format!("event {big_id}")),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("max_message_bytes (2048)"),
        "{}",
        err.message()
    );
    assert_eq!(read(&mock, "audit-events", 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_batch_larger_than_max_message_bytes_is_split() {
    let mock = mock(1, &[("audit-events", 1)]);
    let exporter = exporter(
        &mock,
        json!({"max_message_bytes": 4096, "encoding": "otlp_proto", "key": "none"}),
    )
    .await;
    let batch = events(60);
    assert!(batch.encoded_len() > 4096 * 2);
    exporter.consume(batch.clone()).await.unwrap();
    let messages = read(&mock, "audit-events", 3).await;
    assert!(messages.len() >= 3, "{}", messages.len());
    assert!(messages.iter().all(|m| m.payload().unwrap().len() <= 4096));
    exactly_once(&arrivals(&messages, Encoding::OtlpProto), &ids(&batch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_a_clear_error_at_start_and_in_the_connectivity_check() {
    let mock = mock(1, &[]);
    let ctx = BuildContext::new(ComponentId::new("kafka", Some("siem")));
    let config = json!({"brokers": [mock.bootstrap_servers()], "topic": "nowhere"});
    let exporter = KafkaExporterFactory.build(&ctx, &config).unwrap();
    match exporter.check_connectivity().await {
        auditcol_core::Connectivity::Unreachable(why) => {
            assert!(why.contains("topic `nowhere` does not exist"), "{why}");
            assert!(why.contains("create_topic"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let err = exporter.start().await.unwrap_err();
    assert!(
        err.0
            .contains("exporter kafka/siem: topic `nowhere` does not exist"),
        "{}",
        err.0
    );
    assert!(err.0.contains("create_topic"), "{}", err.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_brokers_fail_the_connectivity_check() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = BuildContext::new(ComponentId::new("kafka", None));
    let config = json!({"brokers": [format!("127.0.0.1:{port}")]});
    let exporter = KafkaExporterFactory.build(&ctx, &config).unwrap();
    match exporter.check_connectivity().await {
        auditcol_core::Connectivity::Unreachable(why) => {
            assert!(why.contains("no answer from the Kafka brokers"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

/// Learns which partition librdkafka's partitioner gives each of `keys`.
async fn partitions_of(mock: &Mock, topic: &str, keys: &[&str]) -> HashMap<String, i32> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    let mut partitions = HashMap::new();
    for key in keys {
        let record: FutureRecord<'_, str, str> = FutureRecord::to(topic).key(*key).payload("probe");
        let delivery = producer.send(record, Duration::from_secs(5)).await.unwrap();
        partitions.insert((*key).to_owned(), delivery.partition);
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_broker_is_down_only_its_messages_are_sent_again() {
    let mock = mock(2, &[("probe", 2), ("audit-events", 2)]);
    for topic in ["probe", "audit-events"] {
        mock.partition_leader(topic, 0, Some(1)).unwrap();
        mock.partition_leader(topic, 1, Some(2)).unwrap();
    }
    // A key value for each partition.
    let candidates: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let partitions = partitions_of(&mock, "probe", &refs).await;
    let on = |p: i32| {
        partitions
            .iter()
            .find(|(_, v)| **v == p)
            .map(|(k, _)| k.clone())
            .unwrap()
    };
    let (key0, key1) = (on(0), on(1));

    let exporter = exporter(&mock, json!({"key": "attribute:shard", "timeout": "1s"})).await;
    let e = AuditEvent::new("flag", "created");
    let mut batch = LogBatch::try_from_events_with_attributes(
        "test",
        (0..6).map(|i| {
            (
                &e,
                vec![(
                    "shard",
                    if i % 2 == 0 {
                        key0.as_str()
                    } else {
                        key1.as_str()
                    },
                )],
            )
        }),
    )
    .unwrap();
    batch.prepare_ingest(1, "test");
    let ids = ids(&batch);

    mock.broker_down(2).unwrap();
    let sending = tokio::spawn({
        let exporter = exporter.clone();
        async move { exporter.consume(batch).await }
    });
    // Several delivery timeouts and retries happen meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !sending.is_finished(),
        "acknowledged while a broker was down"
    );
    mock.broker_up(2).unwrap();
    tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("delivered once the broker is back")
        .unwrap()
        .unwrap();
    // Partition 0's events were delivered at the first attempt and never sent again.
    let messages = read(&mock, "audit-events", 6).await;
    exactly_once(&arrivals(&messages, Encoding::Json), &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_down_for_a_while_lose_nothing_and_delivery_resumes() {
    let mock = mock(1, &[("audit-events", 1)]);
    let exporter = exporter(&mock, json!({"timeout": "1s"})).await;
    let first = events(3);
    exporter.consume(first.clone()).await.unwrap();

    mock.broker_down(1).unwrap();
    let second = events(5);
    let sending = tokio::spawn({
        let exporter = exporter.clone();
        let second = second.clone();
        async move { exporter.consume(second).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !sending.is_finished(),
        "acknowledged while the broker was down"
    );
    mock.broker_up(1).unwrap();
    tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("delivered once the broker is back")
        .unwrap()
        .unwrap();
    // Every acknowledged event is in the topic.
    let mut all = ids(&first);
    all.extend(ids(&second));
    let seen = arrivals(&read(&mock, "audit-events", 8).await, Encoding::Json);
    for id in &all {
        assert!(seen.contains_key(id), "{id} lost: {seen:?}");
    }
}
