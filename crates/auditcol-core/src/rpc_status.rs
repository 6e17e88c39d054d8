//! `google.rpc.Status` and `google.rpc.RetryInfo`, written by hand with only
//! the fields OTLP uses: the error body of OTLP/HTTP and the details of gRPC
//! errors. Shared by the OTLP receiver (which writes them) and the OTLP
//! exporters (which read them).

use std::time::Duration;

/// `google.rpc.Status`, the error body of OTLP/HTTP and the detail of gRPC
/// errors.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Why the request failed.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details, e.g. a `google.rpc.RetryInfo`.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

impl RpcStatus {
    /// The delay of the first `RetryInfo` among the details, if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.details
            .iter()
            .filter(|any| any.type_url == RETRY_INFO_TYPE_URL)
            .find_map(|any| <RetryInfo as prost::Message>::decode(&any.value[..]).ok())
            .and_then(|info| info.retry_delay)
            .map(|d| {
                Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
                    + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
            })
    }
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    /// What `value` holds, e.g. [`RETRY_INFO_TYPE_URL`].
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: how long a client should wait before retrying.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// The wait.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds on top.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Type URL of [`RetryInfo`] inside an `Any`.
pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl RetryInfo {
    /// A `RetryInfo` packed into an `Any`.
    pub fn packed(after: Duration) -> ProtoAny {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(after.subsec_nanos()).unwrap_or(0),
            }),
        };
        ProtoAny {
            type_url: RETRY_INFO_TYPE_URL.to_owned(),
            value: prost::Message::encode_to_vec(&info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_reads_back_a_packed_retry_info() {
        let status = RpcStatus {
            code: 14,
            message: "busy".into(),
            details: vec![
                ProtoAny {
                    type_url: "type.googleapis.com/other".into(),
                    value: vec![1, 2, 3],
                },
                RetryInfo::packed(Duration::from_millis(2500)),
            ],
        };
        assert_eq!(status.retry_delay(), Some(Duration::from_millis(2500)));
        assert_eq!(RpcStatus::default().retry_delay(), None);
    }
}
