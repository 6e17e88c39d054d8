//! What a failed delivery means: librdkafka's errors as pipeline errors.
//!
//! A message is refused for good only when the message itself is at fault
//! (too large, invalid): sending it again would fail again. Everything
//! else — brokers down, a leader moving, a topic not created yet, a timeout,
//! an authorisation an operator can still grant — is retryable, and the
//! exporter helper retries it with backoff until `max_elapsed_time`.

use auditcol_core::PipelineError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// True when the broker or librdkafka refuses the message itself.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidTimestamp
    )
}

/// The pipeline error for a message to `topic` that failed with `error`;
/// `what` names it for the message (`event 0190…` or `3 records`).
pub fn delivery_error(error: &KafkaError, topic: &str, what: &str) -> PipelineError {
    let Some(code) = error.rdkafka_error_code() else {
        return PipelineError::retryable(format!(
            "{what} to topic `{topic}` not delivered: {error}"
        ));
    };
    let message = match code {
        RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::InvalidMessageSize
        | RDKafkaErrorCode::MessageBatchTooLarge => format!(
            "{what} is larger than topic `{topic}` accepts ({code}): raise the topic's max.message.bytes, or lower `max_message_bytes` (and the batch size) so that it is refused before it is sent"
        ),
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => format!(
            "{what} not delivered: topic `{topic}` does not exist; create it, or set `create_topic`"
        ),
        RDKafkaErrorCode::MessageTimedOut => format!(
            "{what} to topic `{topic}` not delivered within `timeout` ({code}); are the brokers reachable?"
        ),
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => {
            format!(
                "{what} not delivered: the brokers do not allow writing to topic `{topic}` ({code}); grant the ACL, check `authentication`"
            )
        }
        _ => format!("{what} to topic `{topic}` not delivered: {error}"),
    };
    if is_permanent(code) {
        PipelineError::permanent(message)
    } else {
        PipelineError::retryable(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_the_message_itself_are_permanent() {
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let e = delivery_error(&too_large, "audit", "event 42");
        assert!(e.is_permanent());
        assert!(
            e.message().starts_with("event 42 is larger"),
            "{}",
            e.message()
        );
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            let e = delivery_error(&KafkaError::MessageProduction(code), "audit", "event 1");
            assert!(!e.is_permanent(), "{code}");
        }
        let e = delivery_error(
            &KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition),
            "audit",
            "event 1",
        );
        assert!(e.message().contains("create_topic"), "{}", e.message());
    }
}
