//! What a gRPC status means for the batch, per the OTLP specification.

use auditcol_core::PipelineError;
use auditcol_core::rpc_status::RpcStatus;
use tonic::{Code, Status};

/// The pipeline error for a failed export call: retryable for the codes the
/// OTLP specification lists (RESOURCE_EXHAUSTED only when the server says
/// when to come back, with a `RetryInfo`), permanent otherwise. The hint of a
/// `RetryInfo` becomes `retry_after`.
pub fn error_for(status: &Status, what: &str) -> PipelineError {
    let retry_after = <RpcStatus as prost::Message>::decode(status.details())
        .ok()
        .and_then(|s| s.retry_delay());
    let retryable = match status.code() {
        Code::Unavailable
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss
        | Code::Cancelled
        | Code::DeadlineExceeded => true,
        Code::ResourceExhausted => retry_after.is_some(),
        _ => false,
    };
    let message = if status.message().is_empty() {
        format!("{what} answered {:?}", status.code())
    } else {
        format!("{what} answered {:?}: {}", status.code(), status.message())
    };
    if retryable {
        PipelineError::Retryable {
            message,
            retry_after,
        }
    } else {
        PipelineError::permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::rpc_status::RetryInfo;
    use std::time::Duration;

    fn with_retry_info(code: Code, after: Duration) -> Status {
        let details = RpcStatus {
            code: code as i32,
            message: "m".into(),
            details: vec![RetryInfo::packed(after)],
        };
        Status::with_details(code, "m", prost::Message::encode_to_vec(&details).into())
    }

    #[test]
    fn codes_map_as_the_specification_says() {
        let retryable = [
            Code::Unavailable,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
            Code::Cancelled,
            Code::DeadlineExceeded,
        ];
        let permanent = [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unauthenticated,
        ];
        for code in retryable {
            let err = error_for(&Status::new(code, "m"), "s");
            assert!(!err.is_permanent(), "{code:?}");
            assert_eq!(err.retry_after(), None, "{code:?}");
        }
        for code in permanent {
            assert!(
                error_for(&Status::new(code, "m"), "s").is_permanent(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn resource_exhausted_is_retryable_only_with_retry_info() {
        let err = error_for(
            &with_retry_info(Code::ResourceExhausted, Duration::from_secs(4)),
            "s",
        );
        assert!(!err.is_permanent());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(4)));
        assert!(error_for(&Status::resource_exhausted("full"), "s").is_permanent());
    }

    #[test]
    fn retry_info_becomes_retry_after() {
        let err = error_for(
            &with_retry_info(Code::Unavailable, Duration::from_millis(1500)),
            "s",
        );
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn messages_name_the_code_and_what_the_server_said() {
        let err = error_for(
            &Status::invalid_argument("record 0 has no audit.action"),
            "exporter otlp: h:1",
        );
        assert_eq!(
            err.message(),
            "exporter otlp: h:1 answered InvalidArgument: record 0 has no audit.action"
        );
        assert_eq!(
            error_for(&Status::new(Code::Internal, ""), "s").message(),
            "s answered Internal"
        );
    }
}
