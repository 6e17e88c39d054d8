//! Settings of the `webhook` receiver.
//!
//! ```yaml
//! endpoint: 127.0.0.1:8088
//! path: /flipt
//! format: audit                                 # or flagsmith
//! signing_secret: ${env:FLIPT_WEBHOOK_SECRET}
//! signature_header: x-flipt-webhook-signature   # the format's header by default
//! max_request_body_size: 1048576
//! max_connections: 1024
//! read_header_timeout: 10s      # for a request's head, from its first byte
//! read_timeout: 0s              # for its body, from the end of its head; 0 = no limit
//! idle_timeout: 1m              # a connection waiting for a request, or HTTP/2 with none open
//! http2_keepalive:
//!   time: 1m                    # ping an HTTP/2 connection silent this long...
//!   timeout: 20s                # ...and close it if the ping is not answered
//! tls:                                          # absent = plain text
//!   cert_file: /etc/auditcol/tls/server.pem
//!   key_file: /etc/auditcol/tls/server.key
//!   client_ca_file: /etc/auditcol/tls/clients-ca.pem   # mutual TLS
//!   reload_interval: 1m
//! auth:                                         # on top of the signature
//!   authenticator: bearertokenauth/flipt
//! ```

use std::fmt;
use std::net::SocketAddr;

use auditcol_core::auth::AuthSettings;
use auditcol_core::config::{ConfigDuration, ConfigError, Secret, Validate, nested};
use auditcol_core::receiverhelper::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_HEADER_TIMEOUT, Http2Keepalive,
    HttpTimeouts, parse_endpoint,
};
use auditcol_core::tls::TlsServerSettings;
use http::HeaderName;
use serde::{Deserialize, Serialize};

/// Default listen address (loopback only).
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:8088";
/// Default URL path events are posted to.
pub const DEFAULT_PATH: &str = "/";
/// Default largest request body accepted, in bytes (1 MiB).
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 1024 * 1024;
/// The header Flipt's webhook sink puts its signature in.
pub const FLIPT_SIGNATURE_HEADER: &str = "x-flipt-webhook-signature";
/// The header Flagsmith puts its webhook signature in.
pub const FLAGSMITH_SIGNATURE_HEADER: &str = "X-Flagsmith-Signature";

/// What the request bodies hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Flipt v0.2 audit events (what Flipt's webhook sink posts, and what a
    /// service without an OpenTelemetry SDK can post).
    #[default]
    Audit,
    /// Flagsmith audit-log webhook payloads, bare or in Flagsmith's
    /// `{"event_type": ..., "data": ...}` envelope.
    Flagsmith,
}

impl Format {
    /// The signature header the format's sender uses.
    pub fn default_signature_header(self) -> &'static str {
        match self {
            Self::Audit => FLIPT_SIGNATURE_HEADER,
            Self::Flagsmith => FLAGSMITH_SIGNATURE_HEADER,
        }
    }

    /// [`Format::default_signature_header`] as a header name.
    pub fn default_signature_header_name(self) -> HeaderName {
        // Header names are case-insensitive; `HeaderName` holds them lower case.
        HeaderName::from_static(match self {
            Self::Audit => "x-flipt-webhook-signature",
            Self::Flagsmith => "x-flagsmith-signature",
        })
    }

    /// `audit.source` of events received by an unnamed `webhook` receiver.
    pub fn default_source(self) -> &'static str {
        match self {
            Self::Audit => "flipt",
            Self::Flagsmith => "flagsmith",
        }
    }

    /// The name used in config and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Flagsmith => "flagsmith",
        }
    }
}

/// The whole `webhook` receiver config.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookReceiverConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// The URL path events are posted to; other paths answer 404.
    pub path: String,
    /// What the request bodies hold.
    pub format: Format,
    /// The shared secret requests are signed with; `None` accepts unsigned
    /// requests (and warns at start).
    pub signing_secret: Option<Secret>,
    /// The header holding the signature; the format's sender's by default.
    pub signature_header: Option<String>,
    /// Largest request body accepted, in bytes.
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
    /// An authenticator extension every request must pass (before its body
    /// is read), besides its signature.
    pub auth: Option<AuthSettings>,
}

impl Default for WebhookReceiverConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            path: DEFAULT_PATH.to_owned(),
            format: Format::default(),
            signing_secret: None,
            signature_header: None,
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

/// The secret never appears in logs or `validate` output.
impl fmt::Debug for WebhookReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiverConfig")
            .field("endpoint", &self.endpoint)
            .field("path", &self.path)
            .field("format", &self.format)
            .field("signing_secret", &self.signing_secret)
            .field("signature_header", &self.signature_header)
            .field("max_request_body_size", &self.max_request_body_size)
            .field("max_connections", &self.max_connections)
            .field("read_header_timeout", &self.read_header_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("http2_keepalive", &self.http2_keepalive)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .finish()
    }
}

impl WebhookReceiverConfig {
    /// The timeouts the listener keeps.
    pub fn timeouts(&self) -> HttpTimeouts {
        HttpTimeouts::new(
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.http2_keepalive,
        )
    }

    /// The address to bind. Only meaningful after validation.
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        parse_endpoint(&self.endpoint)
    }

    /// The header the signature is read from: `signature_header`, or the
    /// format's default (always a valid name).
    pub fn signature_header_name(&self) -> Result<HeaderName, String> {
        match &self.signature_header {
            None => Ok(self.format.default_signature_header_name()),
            Some(name) => HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid HTTP header name")),
        }
    }

    /// The body size limit in bytes.
    pub fn max_request_body_bytes(&self) -> usize {
        usize::try_from(self.max_request_body_size).unwrap_or(usize::MAX)
    }
}

impl Validate for WebhookReceiverConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.socket_addr()
            .map_err(|message| ConfigError::at("endpoint", message))?;
        let path_ok = self.path.starts_with('/')
            && !self
                .path
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
        if !path_ok {
            return Err(ConfigError::at(
                "path",
                format!(
                    "invalid path `{}`: write a URL path starting with `/`, without spaces, `?` or `#`, e.g. `/flipt`",
                    self.path
                ),
            ));
        }
        if self.signing_secret.as_ref().is_some_and(Secret::is_empty) {
            // Most often an unset `${env:...}`: failing here keeps a missing
            // secret from silently turning signature checks off.
            return Err(ConfigError::at(
                "signing_secret",
                "is empty (is its environment variable set?); set the secret shared with the sender, or remove the key to accept unsigned requests",
            ));
        }
        self.signature_header_name()
            .map_err(|message| ConfigError::at("signature_header", message))?;
        if self.signature_header.is_some() && self.signing_secret.is_none() {
            return Err(ConfigError::at(
                "signature_header",
                "has no effect without signing_secret: set the secret too, or remove the key",
            ));
        }
        if self.max_request_body_size == 0 {
            return Err(ConfigError::at(
                "max_request_body_size",
                "must be at least 1 (bytes); the default is 1048576 (1 MiB)",
            ));
        }
        HttpTimeouts::validate(
            self.read_header_timeout,
            self.idle_timeout,
            &self.http2_keepalive,
        )?;
        if self.max_connections == 0 {
            return Err(ConfigError::at(
                "max_connections",
                format!("must be at least 1; the default is {DEFAULT_MAX_CONNECTIONS}"),
            ));
        }
        if let Some(tls) = &self.tls {
            nested("tls", tls.validate())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
