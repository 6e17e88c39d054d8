//! Typed pipeline errors.

use std::time::Duration;

/// Why a batch was not accepted downstream.
///
/// Receivers translate these into their protocol: permanent → gRPC
/// INVALID_ARGUMENT / HTTP 400; retryable and backpressure → UNAVAILABLE /
/// HTTP 503 with `Retry-After` when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// A transient failure: sending the same batch again may succeed.
    #[error("{message}")]
    Retryable {
        message: String,
        /// How long the sender should wait before retrying, if known.
        retry_after: Option<Duration>,
    },
    /// The data itself is bad: retrying it can never succeed.
    #[error("{message}")]
    Permanent { message: String },
    /// A queue is full: the sender should slow down and retry later.
    #[error("{message}")]
    Backpressure {
        message: String,
        retry_after: Option<Duration>,
    },
}

/// An error and its causes, `: `-separated: for messages from libraries
/// whose own text says little ("error sending request", "transport error").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl PipelineError {
    /// A retryable error without a retry-after hint.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// A backpressure error with an optional retry-after hint.
    pub fn backpressure(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::Backpressure {
            message: message.into(),
            retry_after,
        }
    }

    /// True for permanent errors.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }

    /// The retry-after hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } | Self::Backpressure { retry_after, .. } => {
                *retry_after
            }
            Self::Permanent { .. } => None,
        }
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. }
            | Self::Permanent { message }
            | Self::Backpressure { message, .. } => message,
        }
    }

    /// Of two failures, the one the client must hear: permanent beats
    /// backpressure beats retryable (a client must not retry bad data, and
    /// must slow down if any stage is full). Retry-after is the longer one.
    pub fn most_severe(self, other: PipelineError) -> PipelineError {
        fn rank(e: &PipelineError) -> u8 {
            match e {
                PipelineError::Permanent { .. } => 2,
                PipelineError::Backpressure { .. } => 1,
                PipelineError::Retryable { .. } => 0,
            }
        }
        let after = match (self.retry_after(), other.retry_after()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut winner = if rank(&other) > rank(&self) {
            other
        } else {
            self
        };
        match &mut winner {
            Self::Retryable { retry_after, .. } | Self::Backpressure { retry_after, .. } => {
                *retry_after = after
            }
            Self::Permanent { .. } => {}
        }
        winner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_wins_over_backpressure_and_retryable() {
        let e = PipelineError::retryable("a")
            .most_severe(PipelineError::permanent("b"))
            .most_severe(PipelineError::backpressure("c", None));
        assert_eq!(e, PipelineError::permanent("b"));
    }

    #[test]
    fn longest_retry_after_is_kept() {
        let e = PipelineError::backpressure("full", Some(Duration::from_secs(1))).most_severe(
            PipelineError::Retryable {
                message: "down".into(),
                retry_after: Some(Duration::from_secs(5)),
            },
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        assert!(matches!(e, PipelineError::Backpressure { .. }));
    }
}
