//! What every receiver does the same way: parse its listen address, stamp
//! the time of receipt, and turn a refused batch into the protocol's answer.
//!
//! ```
//! use std::time::Duration;
//! use auditcol_core::PipelineError;
//! use auditcol_core::receiverhelper::{HttpRefusal, parse_endpoint};
//!
//! assert_eq!(parse_endpoint(":4318").unwrap().to_string(), "0.0.0.0:4318");
//! let full = PipelineError::backpressure("queue full", None);
//! assert_eq!(HttpRefusal::of(&full), HttpRefusal { status: 503, retry_after_secs: Some(1) });
//! let bad = PipelineError::permanent("rejected by the destination");
//! assert_eq!(HttpRefusal::of(&bad).status, 400);
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::PipelineError;

/// Parses a listen address: `ip:port`, `[ipv6]:port`, `localhost:port`
/// (loopback) or `:port` (all interfaces, as in the Collector). Host names
/// other than `localhost` are refused: resolving them would make validation
/// depend on DNS.
pub fn parse_endpoint(endpoint: &str) -> Result<SocketAddr, String> {
    let invalid = |why: &str| {
        format!(
            "invalid endpoint `{endpoint}`: {why}; write host:port with an IP address or `localhost`, e.g. `127.0.0.1:4317` or `0.0.0.0:4317`"
        )
    };
    if let Ok(addr) = endpoint.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| invalid("no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        h if h.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => return Err(invalid("the host is not an IP address")),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Now, in nanoseconds since the Unix epoch: the `observed_time_unix_nano`
/// a receiver stamps.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Whole seconds to put in `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

/// The HTTP answer to a batch the pipeline refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRefusal {
    /// 400 for bad data (never retried), 503 for a full or failing pipeline.
    pub status: u16,
    /// `Retry-After` in seconds, when the client should be told to wait.
    pub retry_after_secs: Option<u64>,
}

impl HttpRefusal {
    /// The answer to `error`. A full queue always asks the client to wait
    /// (a hint-less client retrying at once would only keep it full); a
    /// retryable failure passes on the hint it has, if any.
    pub fn of(error: &PipelineError) -> Self {
        match error {
            PipelineError::Permanent { .. } => Self {
                status: 400,
                retry_after_secs: None,
            },
            PipelineError::Backpressure { retry_after, .. } => Self {
                status: 503,
                retry_after_secs: Some(retry_after.map_or(1, retry_after_secs)),
            },
            PipelineError::Retryable { retry_after, .. } => Self {
                status: 503,
                retry_after_secs: retry_after.map(retry_after_secs),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn endpoints_are_ip_localhost_or_any() {
        assert_eq!(
            parse_endpoint("127.0.0.1:4317").unwrap().to_string(),
            "127.0.0.1:4317"
        );
        assert_eq!(
            parse_endpoint("[::1]:4317").unwrap().to_string(),
            "[::1]:4317"
        );
        assert_eq!(
            parse_endpoint("localhost:8088").unwrap().to_string(),
            "127.0.0.1:8088"
        );
        assert_eq!(parse_endpoint(":8088").unwrap().to_string(), "0.0.0.0:8088");
        for bad in ["example.com:80", "127.0.0.1", "127.0.0.1:99999", ""] {
            assert!(parse_endpoint(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_map_to_400_or_503_with_retry_after_when_due() {
        let cases = [
            (PipelineError::permanent("x"), 400, None),
            (PipelineError::backpressure("x", None), 503, Some(1)),
            (
                PipelineError::backpressure("x", Some(Duration::from_millis(1500))),
                503,
                Some(2),
            ),
            (PipelineError::retryable("x"), 503, None),
            (
                PipelineError::Retryable {
                    message: "x".into(),
                    retry_after: Some(Duration::from_secs(5)),
                },
                503,
                Some(5),
            ),
        ];
        for (error, status, retry_after_secs) in cases {
            assert_eq!(
                HttpRefusal::of(&error),
                HttpRefusal {
                    status,
                    retry_after_secs
                },
                "{error:?}"
            );
        }
    }
}
