//! Settings of the `otlp` receiver, in the OpenTelemetry Collector's shape
//! and names.
//!
//! ```yaml
//! protocols:
//!   grpc:
//!     endpoint: 127.0.0.1:4317
//!     max_recv_msg_size_mib: 4
//!     max_concurrent_streams: 100
//!     max_connections: 1024
//!     auth:
//!       authenticator: bearertokenauth/ingest   # an extension listed in service.extensions
//!     keepalive:
//!       server_parameters:
//!         time: 1m               # ping a connection silent this long...
//!         timeout: 20s           # ...and close it if the ping is not answered
//!         max_connection_idle: 0s # 0 = no limit; else GOAWAY after this long without a call
//!         max_connection_age: 0s # 0 = no limit; else GOAWAY after this long
//!         max_connection_age_grace: 0s
//!       enforcement_policy:
//!         min_time: 5m           # a client pinging more often is sent away...
//!         permit_without_stream: false # ...and so is one pinging with no call open
//!     tls:                       # absent = plain text
//!       cert_file: /etc/auditcol/tls/server.pem
//!       key_file: /etc/auditcol/tls/server.key
//!       client_ca_file: /etc/auditcol/tls/clients-ca.pem   # mutual TLS
//!       min_version: "1.2"
//!       reload_interval: 1m
//!   http:
//!     endpoint: 127.0.0.1:4318
//!     max_request_body_size: 4194304
//!     max_connections: 1024
//!     read_header_timeout: 10s # for a request's head, from its first byte
//!     read_timeout: 0s         # for its body, from the end of its head; 0 = no limit
//!     idle_timeout: 1m         # a connection waiting for a request, or HTTP/2 with none open
//!     http2_keepalive:
//!       time: 1m               # ping an HTTP/2 connection silent this long...
//!       timeout: 20s           # ...and close it if the ping is not answered
//!     tls: {cert_file: ..., key_file: ...}   # the same keys
//!     auth:
//!       authenticator: basicauth/ingest
//! ```
//!
//! `tls` is [`auditcol_core::tls::TlsServerSettings`]: its files are read and
//! checked when the config is built. gRPC over TLS offers ALPN `h2`, HTTP
//! `h2` and `http/1.1`.
//!
//! As in the Collector, a protocol that is absent is disabled, and one that
//! is present (even as `grpc:` or `grpc: {}`) runs with its defaults.
//!
//! `on_invalid_record` (auditcol's own key) says what happens to a request
//! with some invalid records: `partial_success` (the default, as the OTLP
//! specification describes) accepts the valid ones and reports the others
//! in the response's `partial_success`; `reject_request` refuses the whole
//! request with the first problem.

use std::net::SocketAddr;

use auditcol_core::auth::AuthSettings;
use auditcol_core::config::{ConfigDuration, ConfigError, Validate, nested};
use auditcol_core::receiverhelper::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_HEADER_TIMEOUT, Http2Keepalive,
    HttpTimeouts, PingPolicy, parse_endpoint,
};
use auditcol_core::tls::TlsServerSettings;
use serde::{Deserialize, Deserializer, Serialize};

/// Default OTLP/gRPC listen address (the Collector's port, loopback only).
pub const DEFAULT_GRPC_ENDPOINT: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP listen address (the Collector's port, loopback only).
pub const DEFAULT_HTTP_ENDPOINT: &str = "127.0.0.1:4318";
/// Default largest gRPC message accepted, in MiB (the Collector's default).
pub const DEFAULT_MAX_RECV_MSG_SIZE_MIB: u64 = 4;
/// Default largest HTTP request body accepted, in bytes, before and after
/// decompression.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 4 * 1024 * 1024;

/// Default most requests in flight per gRPC connection (the Collector's).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// gRPC frames carry a 32-bit length: a larger limit could never be reached.
const MAX_RECV_MSG_SIZE_MIB_LIMIT: u64 = 4095;

/// The whole `otlp` receiver config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// The protocols to serve; at least one must be enabled.
    #[serde(default)]
    pub protocols: Protocols,
    /// What to do with a request that holds invalid records among valid ones.
    #[serde(default)]
    pub on_invalid_record: OnInvalidRecord,
}

/// `on_invalid_record`: the fate of a request with some invalid records.
/// A request whose records are all invalid is refused either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalidRecord {
    /// Accept the valid records; report the others in `partial_success`
    /// (`rejected_log_records` and the first one's path and reason).
    #[default]
    PartialSuccess,
    /// Refuse the whole request (INVALID_ARGUMENT / 400) with the first problem.
    RejectRequest,
}

/// Which protocols run. `None` = disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC; enabled when the key is present, even with a null value.
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub grpc: Option<GrpcConfig>,
    /// OTLP/HTTP; enabled when the key is present, even with a null value.
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub http: Option<HttpConfig>,
}

/// `protocols.grpc`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest request message accepted, in MiB (after decompression).
    pub max_recv_msg_size_mib: u64,
    /// Most streams (requests) in flight on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Most connections open at once; more are closed as they come.
    pub max_connections: usize,
    /// HTTP/2 keepalive and connection age, in the Collector's shape.
    pub keepalive: KeepaliveConfig,
    /// TLS (and mutual TLS); plain text when absent.
    pub tls: Option<TlsServerSettings>,
    /// The authenticator every request must pass, before its message is read.
    pub auth: Option<AuthSettings>,
}

/// `protocols.grpc.keepalive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    /// What the server does to its connections.
    pub server_parameters: KeepaliveServerParameters,
    /// What the server allows its clients.
    pub enforcement_policy: KeepaliveEnforcementPolicy,
}

/// `protocols.grpc.keepalive.enforcement_policy`, as grpc-go's (which
/// applies its defaults even when the key is absent): a client PING sooner
/// than `min_time` after its previous one is a strike, and so is any PING
/// sooner than two hours after the previous one while no call is open,
/// unless `permit_without_stream`. Sending a call's answer forgives the
/// strikes. At the third strike the connection is sent GOAWAY
/// ENHANCE_YOUR_CALM (`too_many_pings`) and closed; gRPC clients then
/// double their keepalive time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveEnforcementPolicy {
    /// Least time between two client pings.
    pub min_time: ConfigDuration,
    /// Allow pings (at `min_time`) while no call is open.
    pub permit_without_stream: bool,
}

impl Default for KeepaliveEnforcementPolicy {
    fn default() -> Self {
        Self {
            min_time: ConfigDuration::from_secs(5 * 60),
            permit_without_stream: false,
        }
    }
}

impl KeepaliveEnforcementPolicy {
    /// The policy the listener's connections are held to.
    pub fn ping_policy(&self) -> PingPolicy {
        PingPolicy {
            min_time: self.min_time.0,
            permit_without_stream: self.permit_without_stream,
        }
    }
}

/// `protocols.grpc.keepalive.server_parameters`.
///
/// The server pings a connection it has heard nothing from for `time` and
/// closes it when the ping goes unanswered for `timeout`: a client that
/// vanished (power loss, a dropped NAT entry) gives back its place among
/// `max_connections` instead of holding it forever. Any live HTTP/2 client
/// answers pings by itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveServerParameters {
    /// Ping after this long without a frame from the client; 0 = never.
    pub time: ConfigDuration,
    /// Close when a ping is not answered within this.
    pub timeout: ConfigDuration,
    /// Send GOAWAY to a connection with no call open for this long, and
    /// close it; 0 = no limit.
    pub max_connection_idle: ConfigDuration,
    /// Send GOAWAY to a connection this old (clients reconnect, so load
    /// spreads again behind a balancer); 0 = no limit.
    pub max_connection_age: ConfigDuration,
    /// After GOAWAY, how long requests in flight may take before the
    /// connection is closed; 0 = as long as they need.
    pub max_connection_age_grace: ConfigDuration,
}

impl Default for KeepaliveServerParameters {
    fn default() -> Self {
        Self {
            time: ConfigDuration::from_secs(60),
            timeout: ConfigDuration::from_secs(20),
            max_connection_idle: ConfigDuration::from_secs(0),
            max_connection_age: ConfigDuration::from_secs(0),
            max_connection_age_grace: ConfigDuration::from_secs(0),
        }
    }
}

/// `protocols.http`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest request body accepted, in bytes, both as sent and decompressed.
    pub max_request_body_size: u64,
    /// Most connections open at once; more are closed as they come.
    pub max_connections: usize,
    /// Time a client has to send a request's head (HTTP/1), counted from
    /// its first byte. Over TLS, the handshake and the first bytes after it
    /// must come within it too.
    pub read_header_timeout: ConfigDuration,
    /// Time a client has to send a request's body, counted from the end of
    /// its head; 0 = no limit. A body late is refused with 400.
    pub read_timeout: ConfigDuration,
    /// A connection waiting this long for a request (HTTP/1: since it was
    /// opened or since the last answer), or with no request open this long
    /// (HTTP/2: sent GOAWAY), is closed.
    pub idle_timeout: ConfigDuration,
    /// HTTP/2 pings to silent connections, to close those whose client vanished.
    pub http2_keepalive: Http2Keepalive,
    /// TLS (and mutual TLS); plain text when absent.
    pub tls: Option<TlsServerSettings>,
    /// The authenticator every request must pass, before its body is read.
    pub auth: Option<AuthSettings>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_GRPC_ENDPOINT.to_owned(),
            max_recv_msg_size_mib: DEFAULT_MAX_RECV_MSG_SIZE_MIB,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keepalive: KeepaliveConfig::default(),
            tls: None,
            auth: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_HTTP_ENDPOINT.to_owned(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            read_header_timeout: ConfigDuration(DEFAULT_READ_HEADER_TIMEOUT),
            read_timeout: ConfigDuration::from_secs(0),
            idle_timeout: ConfigDuration(DEFAULT_IDLE_TIMEOUT),
            http2_keepalive: Http2Keepalive::default(),
            tls: None,
            auth: None,
        }
    }
}

impl GrpcConfig {
    /// The address to bind. Only meaningful after validation.
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        parse_endpoint(&self.endpoint)
    }

    /// The message size limit in bytes.
    pub fn max_recv_msg_size_bytes(&self) -> usize {
        usize::try_from(self.max_recv_msg_size_mib.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX)
    }
}

impl HttpConfig {
    /// The address to bind. Only meaningful after validation.
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        parse_endpoint(&self.endpoint)
    }

    /// The body size limit in bytes.
    pub fn max_request_body_bytes(&self) -> usize {
        usize::try_from(self.max_request_body_size).unwrap_or(usize::MAX)
    }

    /// The timeouts the listener keeps.
    pub fn timeouts(&self) -> HttpTimeouts {
        HttpTimeouts::new(
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.http2_keepalive,
        )
    }
}

impl Validate for OtlpReceiverConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        nested("protocols", self.protocols.validate())
    }
}

impl Validate for Protocols {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.grpc.is_none() && self.http.is_none() {
            return Err(ConfigError::at(
                "",
                "enable at least one of protocols.grpc, protocols.http (e.g. `protocols: {grpc: {}, http: {}}`)",
            ));
        }
        if let Some(grpc) = &self.grpc {
            nested("grpc", grpc.validate())?;
        }
        if let Some(http) = &self.http {
            nested("http", http.validate())?;
        }
        Ok(())
    }
}

impl Validate for GrpcConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.socket_addr()
            .map_err(|message| ConfigError::at("endpoint", message))?;
        if !(1..=MAX_RECV_MSG_SIZE_MIB_LIMIT).contains(&self.max_recv_msg_size_mib) {
            return Err(ConfigError::at(
                "max_recv_msg_size_mib",
                format!(
                    "must be between 1 and {MAX_RECV_MSG_SIZE_MIB_LIMIT} (MiB), got {}",
                    self.max_recv_msg_size_mib
                ),
            ));
        }
        check_max_connections(self.max_connections)?;
        if self.max_concurrent_streams == 0 {
            return Err(ConfigError::at(
                "max_concurrent_streams",
                format!("must be at least 1; the default is {DEFAULT_MAX_CONCURRENT_STREAMS}"),
            ));
        }
        let keepalive = &self.keepalive.server_parameters;
        if !keepalive.time.0.is_zero() && keepalive.timeout.0.is_zero() {
            return Err(ConfigError::at(
                "keepalive.server_parameters.timeout",
                "must be more than 0 when `time` is set: how long a ping may go unanswered",
            ));
        }
        if keepalive.max_connection_age.0.is_zero()
            && !keepalive.max_connection_age_grace.0.is_zero()
        {
            return Err(ConfigError::at(
                "keepalive.server_parameters.max_connection_age_grace",
                "applies with `max_connection_age` only",
            ));
        }
        if self.keepalive.enforcement_policy.min_time.0.is_zero() {
            return Err(ConfigError::at(
                "keepalive.enforcement_policy.min_time",
                "must be more than 0; the default is 5m (a small value such as 1s allows frequent pings)",
            ));
        }
        if let Some(tls) = &self.tls {
            nested("tls", tls.validate())?;
        }
        Ok(())
    }
}

/// `max_connections` must let at least one client in.
fn check_max_connections(max_connections: usize) -> Result<(), ConfigError> {
    if max_connections == 0 {
        return Err(ConfigError::at(
            "max_connections",
            format!("must be at least 1; the default is {DEFAULT_MAX_CONNECTIONS}"),
        ));
    }
    Ok(())
}

impl Validate for HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_max_connections(self.max_connections)?;
        HttpTimeouts::validate(
            self.read_header_timeout,
            self.idle_timeout,
            &self.http2_keepalive,
        )?;
        self.socket_addr()
            .map_err(|message| ConfigError::at("endpoint", message))?;
        if self.max_request_body_size == 0 {
            return Err(ConfigError::at(
                "max_request_body_size",
                "must be at least 1 (bytes); the default is 4194304 (4 MiB)",
            ));
        }
        if let Some(tls) = &self.tls {
            nested("tls", tls.validate())?;
        }
        Ok(())
    }
}

/// `Option<T>` where a present key, even `null`, means enabled with defaults;
/// only an absent key (handled by `#[serde(default)]`) means disabled.
fn present_means_enabled<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(|value| Some(value.unwrap_or_default()))
}

#[cfg(test)]
mod tests;
