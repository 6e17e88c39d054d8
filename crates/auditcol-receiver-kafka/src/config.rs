//! The `kafka` receiver's settings. The client settings (`brokers`,
//! `client_id`, `authentication`, `tls`, `properties`) are
//! [`KafkaClientSettings`], shared with the exporter; the rest are here.

use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
use auditcol_kafka::{Encoding, KafkaClientSettings, check_topic_name};
use serde::{Deserialize, Serialize};

/// The topic read when `topics` is not set: the exporter's default.
pub const DEFAULT_TOPIC: &str = "audit-events";

/// The consumer group when `group_id` is not set.
pub const DEFAULT_GROUP_ID: &str = "auditcol";

/// Settings of one `kafka` receiver.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaReceiverConfig {
    /// Where and how to connect (the keys shared with the exporter).
    #[serde(skip)]
    pub client: KafkaClientSettings,
    /// The topics to read.
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// The consumer group: receivers with one group id share the partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// How message values are read.
    #[serde(default)]
    pub encoding: Encoding,
    /// Where a group with no committed offset starts.
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// Messages that cannot be decoded, and batches the pipeline refuses
    /// for good, go here instead of being skipped.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// At most this many messages are handed to the pipeline as one batch,
    /// and at most this many wait behind it; past that, reading pauses.
    #[serde(default = "default_max_batch_messages")]
    pub max_batch_messages: usize,
    /// A member that sends no heartbeat for this long leaves the group.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: ConfigDuration,
    /// How often the member sends a heartbeat.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: ConfigDuration,
    /// How often acknowledged offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: ConfigDuration,
}

fn default_topics() -> Vec<String> {
    vec![DEFAULT_TOPIC.to_owned()]
}

fn default_group_id() -> String {
    DEFAULT_GROUP_ID.to_owned()
}

fn default_max_batch_messages() -> usize {
    1000
}

fn default_session_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn default_heartbeat_interval() -> ConfigDuration {
    ConfigDuration::from_secs(3)
}

fn default_commit_interval() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}

impl Default for KafkaReceiverConfig {
    fn default() -> Self {
        Self {
            client: KafkaClientSettings::default(),
            topics: default_topics(),
            group_id: default_group_id(),
            encoding: Encoding::default(),
            initial_offset: InitialOffset::default(),
            dead_letter_topic: None,
            max_batch_messages: default_max_batch_messages(),
            session_timeout: default_session_timeout(),
            heartbeat_interval: default_heartbeat_interval(),
            commit_interval: default_commit_interval(),
        }
    }
}

/// `initial_offset`: librdkafka's `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialOffset {
    /// From the oldest message kept: a new group misses nothing.
    #[default]
    Earliest,
    /// From messages produced after the group first joins.
    Latest,
}

impl InitialOffset {
    fn name(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// The librdkafka properties this receiver's keys set, and the key (or why
/// the receiver keeps them to itself).
pub const RESERVED_PROPERTIES: [(&str, &str); 8] = [
    ("group.id", "group_id"),
    ("auto.offset.reset", "initial_offset"),
    ("session.timeout.ms", "session_timeout"),
    ("heartbeat.interval.ms", "heartbeat_interval"),
    ("auto.commit.interval.ms", "commit_interval"),
    (
        "enable.auto.commit",
        "no key: the receiver commits only offsets the pipeline acknowledged",
    ),
    (
        "enable.auto.offset.store",
        "no key: the receiver stores only offsets the pipeline acknowledged",
    ),
    (
        "enable.partition.eof",
        "no key: the receiver reads partitions as endless",
    ),
];

impl KafkaReceiverConfig {
    /// Parses and validates a receiver's raw config (both halves).
    pub fn parse(raw: &serde_json::Value) -> Result<Self, ConfigError> {
        let (client, mut config): (KafkaClientSettings, Self) = auditcol_kafka::parse_config(raw)?;
        config.client = client;
        config
            .client
            .check_properties(&RESERVED_PROPERTIES, config.consumer_properties())?;
        Ok(config)
    }

    /// The consumer properties the receiver sets. Offsets are stored by the
    /// receiver once the pipeline acknowledged their records, never by
    /// librdkafka when a message is handed out; librdkafka commits what is
    /// stored every `commit_interval`, on a rebalance and at close.
    pub fn consumer_properties(&self) -> Vec<(&'static str, String)> {
        vec![
            ("group.id", self.group_id.clone()),
            ("auto.offset.reset", self.initial_offset.name().to_owned()),
            (
                "session.timeout.ms",
                self.session_timeout.0.as_millis().to_string(),
            ),
            (
                "heartbeat.interval.ms",
                self.heartbeat_interval.0.as_millis().to_string(),
            ),
            ("enable.auto.commit", "true".to_owned()),
            (
                "auto.commit.interval.ms",
                self.commit_interval.0.as_millis().to_string(),
            ),
            ("enable.auto.offset.store", "false".to_owned()),
            ("enable.partition.eof", "false".to_owned()),
            // Subscribing to a topic must not create it.
            ("allow.auto.create.topics", "false".to_owned()),
        ]
    }
}

impl Validate for KafkaReceiverConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.topics.is_empty() {
            return Err(ConfigError::at(
                "topics",
                "must list at least one topic, e.g. [audit-events]",
            ));
        }
        for (i, topic) in self.topics.iter().enumerate() {
            check_topic_name(topic).map_err(|e| ConfigError::at(format!("topics[{i}]"), e))?;
            if self.topics[..i].contains(topic) {
                return Err(ConfigError::at(
                    format!("topics[{i}]"),
                    format!("`{topic}` is listed twice"),
                ));
            }
        }
        if self.group_id.trim().is_empty() {
            return Err(ConfigError::at(
                "group_id",
                "must not be empty: receivers with one group id share the topics' partitions",
            ));
        }
        if let Some(topic) = &self.dead_letter_topic {
            check_topic_name(topic).map_err(|e| ConfigError::at("dead_letter_topic", e))?;
            if self.topics.contains(topic) {
                return Err(ConfigError::at(
                    "dead_letter_topic",
                    format!("`{topic}` is also in `topics`: dead letters would be read again"),
                ));
            }
        }
        if self.max_batch_messages == 0 {
            return Err(ConfigError::at("max_batch_messages", "must be at least 1"));
        }
        let ms = |d: ConfigDuration| d.0.as_millis();
        if !(1..=3_600_000).contains(&ms(self.session_timeout)) {
            return Err(ConfigError::at(
                "session_timeout",
                "must be between 1ms and 1h (brokers often allow 6s to 5m)",
            ));
        }
        if ms(self.heartbeat_interval) == 0 || self.heartbeat_interval >= self.session_timeout {
            return Err(ConfigError::at(
                "heartbeat_interval",
                format!(
                    "must be above 0 and below session_timeout ({}), typically a third of it",
                    self.session_timeout
                ),
            ));
        }
        if !(1..=3_600_000).contains(&ms(self.commit_interval)) {
            return Err(ConfigError::at(
                "commit_interval",
                "must be between 1ms and 1h",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(raw: serde_json::Value) -> Result<KafkaReceiverConfig, ConfigError> {
        KafkaReceiverConfig::parse(&raw)
    }

    #[test]
    fn defaults_read_the_exporters_topic_from_the_start_and_commit_only_what_is_stored() {
        let config = parse(json!({"brokers": ["k:9092"]})).unwrap();
        assert_eq!(config.topics, ["audit-events"]);
        assert_eq!(config.group_id, "auditcol");
        assert_eq!(config.encoding, Encoding::Json);
        assert_eq!(config.initial_offset, InitialOffset::Earliest);
        let properties = config.consumer_properties();
        let get = |k: &str| {
            properties
                .iter()
                .find(|(p, _)| *p == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("enable.auto.offset.store"), Some("false"));
        assert_eq!(get("enable.auto.commit"), Some("true"));
        assert_eq!(get("auto.offset.reset"), Some("earliest"));
        assert_eq!(get("session.timeout.ms"), Some("10000"));
    }

    #[test]
    fn offset_handling_cannot_be_overridden_through_properties() {
        for property in ["enable.auto.commit", "enable.auto.offset.store", "group.id"] {
            let err =
                parse(json!({"brokers": ["k:1"], "properties": {property: "x"}})).unwrap_err();
            assert_eq!(err.path, format!("properties.{property}"));
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        for (raw, path) in [
            (json!({"brokers": ["k:1"], "topics": []}), "topics"),
            (
                json!({"brokers": ["k:1"], "topics": ["a", "a"]}),
                "topics[1]",
            ),
            (json!({"brokers": ["k:1"], "topics": ["a b"]}), "topics[0]"),
            (json!({"brokers": ["k:1"], "group_id": " "}), "group_id"),
            (
                json!({"brokers": ["k:1"], "dead_letter_topic": "audit-events"}),
                "dead_letter_topic",
            ),
            (
                json!({"brokers": ["k:1"], "initial_offset": "middle"}),
                "initial_offset",
            ),
            (
                json!({"brokers": ["k:1"], "max_batch_messages": 0}),
                "max_batch_messages",
            ),
            (
                json!({"brokers": ["k:1"], "heartbeat_interval": "20s"}),
                "heartbeat_interval",
            ),
            (json!({"brokers": ["k:1"], "encoding": "avro"}), "encoding"),
            (json!({"brokers": ["k:1"], "topic": "x"}), "topic"),
        ] {
            assert_eq!(parse(raw.clone()).unwrap_err().path, path, "{raw}");
        }
    }
}
