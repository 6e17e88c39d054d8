//! The `kafka` exporter's settings. The client settings (`brokers`,
//! `client_id`, `authentication`, `tls`, `properties`) are
//! [`KafkaClientSettings`], shared with the receiver; the rest are here.

use std::fmt;

use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
use auditcol_core::exporterhelper::{ExporterHelperSettings, QueueSettings, RetrySettings};
use auditcol_kafka::{Encoding, KafkaClientSettings, check_topic_name};
use serde::{Deserialize, Deserializer, Serialize};

/// The topic when `topic` is not set.
pub const DEFAULT_TOPIC: &str = "audit-events";

/// The largest message when `max_message_bytes` is not set: the brokers' own default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Settings of one `kafka` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaExporterConfig {
    /// Where and how to connect (the keys shared with the receiver).
    #[serde(skip)]
    pub client: KafkaClientSettings,
    /// The topic messages go to.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// A record or resource attribute whose value, when present, is the
    /// topic instead.
    #[serde(default)]
    pub topic_from_attribute: Option<String>,
    /// The message key.
    #[serde(default)]
    pub key: MessageKey,
    /// How records become message values.
    #[serde(default)]
    pub encoding: Encoding,
    /// Compression of message batches.
    #[serde(default)]
    pub compression: Compression,
    /// Messages larger than this are refused before they are sent.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// How long librdkafka waits for more messages before it sends a batch.
    #[serde(default = "default_linger")]
    pub linger: ConfigDuration,
    /// Create the topic (and topics from `topic_from_attribute`) when missing.
    #[serde(default)]
    pub create_topic: Option<CreateTopic>,
    /// Per message: its delivery report must have come within it
    /// (librdkafka's `message.timeout.ms`, its own retries included).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Retries of retryable failures (exporter helper).
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// The queue in front of the sender (exporter helper).
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

fn default_linger() -> ConfigDuration {
    ConfigDuration::from_millis(5)
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

impl Default for KafkaExporterConfig {
    fn default() -> Self {
        Self {
            client: KafkaClientSettings::default(),
            topic: default_topic(),
            topic_from_attribute: None,
            key: MessageKey::default(),
            encoding: Encoding::default(),
            compression: Compression::default(),
            max_message_bytes: default_max_message_bytes(),
            linger: default_linger(),
            create_topic: None,
            timeout: default_timeout(),
            retry_on_failure: RetrySettings::default(),
            sending_queue: QueueSettings::default(),
        }
    }
}

/// `key`: what each message is keyed by, and so which partition it goes to
/// (messages with one key stay in order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MessageKey {
    /// The audit noun (`flag`, `segment`), as Flipt's sink does.
    #[default]
    Type,
    /// No key: librdkafka spreads messages over partitions.
    None,
    /// `attribute:<name>`: the value of a record (or resource) attribute;
    /// no key when the record has none.
    Attribute(String),
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Type => f.write_str("type"),
            Self::None => f.write_str("none"),
            Self::Attribute(name) => write!(f, "attribute:{name}"),
        }
    }
}

impl Serialize for MessageKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "type" => Ok(Self::Type),
            "none" => Ok(Self::None),
            _ => match text.strip_prefix("attribute:") {
                Some(name) if !name.trim().is_empty() => Ok(Self::Attribute(name.to_owned())),
                _ => Err(serde::de::Error::custom(format!(
                    "`{text}` is not a key: use `type` (the audit noun), `none`, or `attribute:<name>`"
                ))),
            },
        }
    }
}

/// `compression`: librdkafka's `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The librdkafka value.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// `create_topic`: how a missing topic is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Partitions of a created topic.
    #[serde(default = "one")]
    pub partitions: i32,
    /// Replicas of each partition.
    #[serde(default = "one")]
    pub replication_factor: i32,
}

fn one() -> i32 {
    1
}

/// The librdkafka properties this exporter's keys set, and the key.
pub const RESERVED_PROPERTIES: [(&str, &str); 8] = [
    ("compression.type", "compression"),
    ("compression.codec", "compression"),
    ("message.max.bytes", "max_message_bytes"),
    ("linger.ms", "linger"),
    ("queue.buffering.max.ms", "linger"),
    ("message.timeout.ms", "timeout"),
    ("delivery.timeout.ms", "timeout"),
    ("allow.auto.create.topics", "create_topic"),
];

/// Room for a message's framing (record header, key, headers) above
/// `max_message_bytes` in librdkafka's own limit, so that our check —
/// which names the event — is the one that refuses a message.
const FRAMING_ALLOWANCE: usize = 64 * 1024;

impl KafkaExporterConfig {
    /// Parses and validates an exporter's raw config (both halves).
    pub fn parse(raw: &serde_json::Value) -> Result<Self, ConfigError> {
        let (client, mut config): (KafkaClientSettings, Self) = auditcol_kafka::parse_config(raw)?;
        config.client = client;
        config
            .client
            .check_properties(&RESERVED_PROPERTIES, config.producer_properties())?;
        Ok(config)
    }

    /// The producer properties the exporter sets: safe for audit events
    /// (every in-sync replica has a message before it counts as delivered;
    /// librdkafka's retries cannot duplicate or reorder), then the keys.
    /// `properties` may override `acks` and `enable.idempotence`, not these keys.
    pub fn producer_properties(&self) -> Vec<(&'static str, String)> {
        vec![
            ("acks", "all".to_owned()),
            ("enable.idempotence", "true".to_owned()),
            ("compression.type", self.compression.name().to_owned()),
            (
                "message.max.bytes",
                (self.max_message_bytes + FRAMING_ALLOWANCE).to_string(),
            ),
            ("linger.ms", self.linger.0.as_millis().to_string()),
            ("message.timeout.ms", self.timeout.0.as_millis().to_string()),
            // A topic is created by `create_topic` or by its owner, never
            // by a broker's auto-creation on first write.
            ("allow.auto.create.topics", "false".to_owned()),
        ]
    }

    /// The exporter helper's part. Its own timeout is off: `timeout` bounds
    /// each message inside librdkafka, so that a slow message fails alone
    /// and those delivered are not sent again.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings::from_parts(
            ConfigDuration::from_secs(0),
            self.retry_on_failure.clone(),
            self.sending_queue.clone(),
        )
    }
}

impl Validate for KafkaExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_topic_name(&self.topic).map_err(|e| ConfigError::at("topic", e))?;
        if let Some(attribute) = &self.topic_from_attribute
            && attribute.trim().is_empty()
        {
            return Err(ConfigError::at(
                "topic_from_attribute",
                "must not be empty: name an attribute, e.g. tenant.topic, or remove the key",
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::at(
                "max_message_bytes",
                "must be at least 1024: one audit event takes a few hundred bytes",
            ));
        }
        if self.max_message_bytes > 100_000_000 {
            return Err(ConfigError::at(
                "max_message_bytes",
                "must be at most 100000000 (100 MB)",
            ));
        }
        if self.linger.0.as_millis() > 900_000 {
            return Err(ConfigError::at("linger", "must be at most 15m"));
        }
        if self.timeout.0.as_millis() > i32::MAX as u128 {
            return Err(ConfigError::at(
                "timeout",
                "must be at most 596h (librdkafka's limit); 0 means no limit",
            ));
        }
        if !self.timeout.0.is_zero() && self.timeout.0 <= self.linger.0 {
            return Err(ConfigError::at(
                "timeout",
                format!(
                    "must be longer than linger ({}): a message waits up to linger before it is sent",
                    self.linger
                ),
            ));
        }
        if let Some(create) = self.create_topic {
            if create.partitions < 1 {
                return Err(ConfigError::at(
                    "create_topic.partitions",
                    "must be at least 1",
                ));
            }
            if create.replication_factor < 1 {
                return Err(ConfigError::at(
                    "create_topic.replication_factor",
                    "must be at least 1",
                ));
            }
        }
        self.helper_settings().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(raw: serde_json::Value) -> Result<KafkaExporterConfig, ConfigError> {
        KafkaExporterConfig::parse(&raw)
    }

    #[test]
    fn defaults_are_flipts_sink_and_safe_for_audit() {
        let config = parse(json!({"brokers": ["k:9092"]})).unwrap();
        assert_eq!(config.topic, "audit-events");
        assert_eq!(config.key, MessageKey::Type);
        assert_eq!(config.encoding, Encoding::Json);
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.max_message_bytes, 1_000_000);
        assert!(config.create_topic.is_none());
        let properties = config.producer_properties();
        let get = |k: &str| {
            properties
                .iter()
                .find(|(p, _)| *p == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("acks"), Some("all"));
        assert_eq!(get("enable.idempotence"), Some("true"));
        assert_eq!(get("message.timeout.ms"), Some("30000"));
        assert_eq!(get("linger.ms"), Some("5"));
        assert_eq!(
            config.helper_settings().timeout,
            ConfigDuration::from_secs(0)
        );
    }

    #[test]
    fn keys_are_type_none_or_an_attribute() {
        let key = |k: &str| parse(json!({"brokers": ["k:1"], "key": k})).map(|c| c.key);
        assert_eq!(key("none").unwrap(), MessageKey::None);
        assert_eq!(
            key("attribute:tenant.id").unwrap(),
            MessageKey::Attribute("tenant.id".into())
        );
        for bad in ["noun", "attribute:", "attribute: "] {
            let err = key(bad).unwrap_err();
            assert_eq!(err.path, "key", "{bad}");
            assert!(err.message.contains("attribute:<name>"), "{}", err.message);
        }
    }

    #[test]
    fn encodings_and_compressions_are_named() {
        let config =
            parse(json!({"brokers": ["k:1"], "encoding": "otlp_proto", "compression": "zstd"}))
                .unwrap();
        assert_eq!(config.encoding, Encoding::OtlpProto);
        assert_eq!(config.compression.name(), "zstd");
        assert_eq!(
            parse(json!({"brokers": ["k:1"], "encoding": "avro"}))
                .unwrap_err()
                .path,
            "encoding"
        );
        assert_eq!(
            parse(json!({"brokers": ["k:1"], "compression": "brotli"}))
                .unwrap_err()
                .path,
            "compression"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (raw, path) in [
            (json!({"brokers": ["k:1"], "topic": "a b"}), "topic"),
            (
                json!({"brokers": ["k:1"], "topic_from_attribute": ""}),
                "topic_from_attribute",
            ),
            (
                json!({"brokers": ["k:1"], "max_message_bytes": 10}),
                "max_message_bytes",
            ),
            (
                json!({"brokers": ["k:1"], "create_topic": {"partitions": 0}}),
                "create_topic.partitions",
            ),
            (
                json!({"brokers": ["k:1"], "create_topic": {"replicas": 3}}),
                "create_topic.replicas",
            ),
            (
                json!({"brokers": ["k:1"], "retry_on_failure": {"multiplier": 0}}),
                "retry_on_failure.multiplier",
            ),
            (
                json!({"brokers": ["k:1"], "properties": {"linger.ms": 1}}),
                "properties.linger.ms",
            ),
            (
                json!({"brokers": ["k:1"], "properties": {"no.such": 1}}),
                "properties.no.such",
            ),
            (json!({"topic": "t"}), "brokers"),
        ] {
            assert_eq!(parse(raw.clone()).unwrap_err().path, path, "{raw}");
        }
    }

    #[test]
    fn create_topic_defaults_to_one_partition_and_replica() {
        let config = parse(json!({"brokers": ["k:1"], "create_topic": {}})).unwrap();
        assert_eq!(
            config.create_topic,
            Some(CreateTopic {
                partitions: 1,
                replication_factor: 1
            })
        );
    }
}
