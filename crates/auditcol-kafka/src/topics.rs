//! Topics: legal names, whether they exist (metadata), creating them.
//!
//! librdkafka's metadata and admin calls block; these functions run them on
//! the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::RDKafkaErrorCode;

/// Kafka's own limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;

/// Checks a topic name as Kafka does: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TOPIC_LEN || name == "." || name == ".." {
        return Err(format!(
            "`{name}` is not a valid Kafka topic name: 1 to {MAX_TOPIC_LEN} characters, not `.` or `..`"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{name}` is not a valid Kafka topic name: {c:?} is not allowed (use letters, digits, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// Why topics could not be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicCheckError {
    /// No broker answered the metadata request.
    #[error(
        "no answer from the Kafka brokers {brokers} within {timeout:?}: {reason}; check `brokers`, the network, `tls` and `authentication`"
    )]
    Unreachable {
        brokers: String,
        timeout: Duration,
        reason: String,
    },
    /// The brokers answered; these topics do not exist.
    #[error("topic {} does not exist on the brokers {brokers}: {hint}", quoted(.topics))]
    Missing {
        topics: Vec<String>,
        brokers: String,
        /// What to do, from the component's point of view.
        hint: String,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks the brokers (through `client`) which of `topics` do not exist.
/// Blocks up to `timeout`: call it from the blocking pool.
pub fn missing_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    timeout: Duration,
    brokers: &str,
) -> Result<Vec<String>, TopicCheckError> {
    let metadata =
        client
            .fetch_metadata(None, timeout)
            .map_err(|e| TopicCheckError::Unreachable {
                brokers: brokers.to_owned(),
                timeout,
                reason: e.to_string(),
            })?;
    Ok(topics
        .iter()
        .filter(|wanted| {
            !metadata
                .topics()
                .iter()
                .any(|t| t.name() == wanted.as_str() && t.error().is_none())
        })
        .cloned()
        .collect())
}

/// [`missing_topics`] with a client of its own made from `config`, on the
/// blocking pool: for checks before a component runs
/// (`validate --check-connectivity`, start).
pub async fn check_topics(
    config: &ClientConfig,
    topics: &[String],
    timeout: Duration,
    hint: &str,
) -> Result<(), TopicCheckError> {
    let brokers = config.get("bootstrap.servers").unwrap_or("").to_owned();
    let mut config = config.clone();
    // Asking about a topic must not create it.
    config.set("allow.auto.create.topics", "false");
    let topics = topics.to_vec();
    let unreachable = |reason: String| TopicCheckError::Unreachable {
        brokers: brokers.clone(),
        timeout,
        reason,
    };
    let client: Arc<rdkafka::producer::BaseProducer> = Arc::new(
        config
            .create()
            .map_err(|e| unreachable(format!("cannot create a Kafka client: {e}")))?,
    );
    let b = brokers.clone();
    let missing = tokio::task::spawn_blocking(move || {
        missing_topics(
            rdkafka::producer::Producer::client(client.as_ref()),
            &topics,
            timeout,
            &b,
        )
    })
    .await
    .map_err(|e| unreachable(format!("the metadata request did not finish: {e}")))??;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TopicCheckError::Missing {
            topics: missing,
            brokers,
            hint: hint.to_owned(),
        })
    }
}

/// Creates `topics` with `partitions` and `replication_factor`; topics that
/// exist already are left as they are.
pub async fn create_topics(
    config: &ClientConfig,
    topics: &[String],
    partitions: i32,
    replication_factor: i32,
    timeout: Duration,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication_factor)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(|e| format!("cannot create topics {}: {e}", quoted(topics)))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(format!(
                    "cannot create topic `{topic}` ({partitions} partitions, replication factor {replication_factor}): {code}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for ok in ["audit-events", "a.b_c-1", "A", &"x".repeat(249)] {
            check_topic_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "with space", "ü", "a/b", &"x".repeat(250)] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
    }
}
