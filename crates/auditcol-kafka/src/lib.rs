//! What auditcol's `kafka` exporter and `kafka` receiver share — a library,
//! not a component: each component crate depends on it (and on rdkafka,
//! the Rust binding of librdkafka), never on the other component.
//!
//! - [`settings`]: the client settings both take at the top of their config
//!   (`brokers`, `client_id`, `authentication`, `tls`, `properties`), their
//!   validation, and the librdkafka config they make.
//!   [`parse_config`] splits a component's config into these and its own.
//! - [`encoding`]: the four message encodings (`json`, `protobuf`,
//!   `otlp_proto`, `otlp_json`), written from and read into a `LogBatch`.
//! - [`flipt_proto`]: Flipt's `flipt.audit.Event` protobuf (`proto/`), by hand.
//! - [`topics`]: topic names, metadata checks and topic creation.
//! - [`delivery`]: librdkafka errors as pipeline errors (retryable or not).

pub mod delivery;
pub mod encoding;
pub mod flipt_proto;
pub mod settings;
pub mod topics;

pub use encoding::{Encoding, EventHeaders, MessageDecodeError};
pub use settings::{
    Authentication, KafkaClientSettings, SaslMechanism, effective_config, parse_config,
};
pub use topics::{TopicCheckError, check_topic_name, check_topics, create_topics};
