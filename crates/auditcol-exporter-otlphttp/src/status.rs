//! What an OTLP/HTTP answer means for the batch: delivered (perhaps with
//! some records rejected), retry later, or never.

use std::time::SystemTime;

use auditcol_core::PipelineError;
use auditcol_core::httpclient::{body_snippet, parse_retry_after};

/// Whether the OTLP specification says a status is worth retrying:
/// 429, 502, 503, 504.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The error for a non-2xx answer: retryable (with the server's
/// `Retry-After`) for the statuses the specification lists, permanent
/// otherwise. The message names the status and what the server said.
pub fn error_for(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    what: &str,
    now: SystemTime,
) -> PipelineError {
    let said = body_snippet(body);
    let message = if said.is_empty() {
        format!("{what} answered HTTP {status}")
    } else {
        format!("{what} answered HTTP {status}: {said}")
    };
    if is_retryable(status) {
        PipelineError::Retryable {
            message,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        }
    } else {
        PipelineError::permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use auditcol_core::rpc_status::RpcStatus;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    #[test]
    fn retryable_statuses_are_those_of_the_specification() {
        for status in [429, 502, 503, 504] {
            assert!(is_retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 405, 413, 415, 500, 501] {
            assert!(!is_retryable(status), "{status}");
        }
    }

    #[test]
    fn statuses_map_to_pipeline_errors() {
        let table: &[(u16, Option<&str>, bool, Option<Duration>)] = &[
            (503, Some("3"), false, Some(Duration::from_secs(3))),
            (429, None, false, None),
            (502, Some("garbage"), false, None),
            (504, Some("1"), false, Some(Duration::from_secs(1))),
            (400, Some("3"), true, None),
            (401, None, true, None),
            (404, None, true, None),
            (413, None, true, None),
            (500, None, true, None),
        ];
        for &(status, retry_after, permanent, after) in table {
            let err = error_for(status, retry_after, b"", "the server", now());
            assert_eq!(err.is_permanent(), permanent, "{status}");
            assert_eq!(err.retry_after(), after, "{status}");
            assert_eq!(err.message(), format!("the server answered HTTP {status}"));
        }
    }

    #[test]
    fn error_messages_quote_what_the_server_said() {
        let err = error_for(
            400,
            None,
            br#"{"code":3,"message":"bad record 2"}"#,
            "s",
            now(),
        );
        assert_eq!(err.message(), "s answered HTTP 400: bad record 2");
        let status = RpcStatus {
            code: 3,
            message: "bad record 5".into(),
            details: vec![],
        };
        let body = prost::Message::encode_to_vec(&status);
        let err = error_for(400, None, &body, "s", now());
        assert_eq!(err.message(), "s answered HTTP 400: bad record 5");
        let err = error_for(403, None, b"  forbidden\n", "s", now());
        assert_eq!(err.message(), "s answered HTTP 403: forbidden");
    }
}
