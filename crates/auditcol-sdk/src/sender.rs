//! An OpenTelemetry logger provider of its own that sends audit events to
//! one OTLP endpoint and reports whether they arrived.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, SdkLogger, SdkLoggerProvider,
};

use crate::http_client::LedgerHttpClient;
use crate::ledger::{DeliveryLedger, RecordingExporter, Settlement};
use crate::{AuditEvent, AuditLogger};

/// How audit events travel to the endpoint: OTLP over gRPC, or over HTTP
/// with a protobuf or JSON body. Spelled as in `OTEL_EXPORTER_OTLP_PROTOCOL`
/// (`grpc`, `http/protobuf`, `http/json`) by [`Display`](fmt::Display) and
/// [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, to `<endpoint>/v1/logs` (default port 4318).
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies, to `<endpoint>/v1/logs` (default port 4318).
    HttpJson,
}

impl Protocol {
    /// The name in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    /// The endpoint used when none is given: the collector's default port
    /// for the protocol on 127.0.0.1.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://127.0.0.1:4317",
            Protocol::HttpProtobuf | Protocol::HttpJson => "http://127.0.0.1:4318",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name other than `grpc`, `http/protobuf` and `http/json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?}: use grpc, http/protobuf or http/json")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(name: &str) -> Result<Self, UnknownProtocol> {
        [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson]
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownProtocol(name.to_owned()))
    }
}

/// Why an [`AuditSender`] was not built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The endpoint is not a URL the protocol can use.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid {setting}: {reason}")]
    InvalidSetting {
        /// The builder method.
        setting: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The CA certificates could not be used.
    #[error("cannot use the CA certificates: {0}")]
    CaCertificates(String),
    /// The thread that runs the connections could not start.
    #[error("cannot start the audit sender's I/O thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The OpenTelemetry OTLP exporter refused its configuration.
    #[error("cannot build the OTLP log exporter: {0}")]
    Exporter(String),
}

/// What a flush or shutdown confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// Events the endpoint accepted since the previous report.
    pub delivered: u64,
}

/// Events that did not arrive, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryFailure {
    /// The endpoint, as configured.
    pub endpoint: String,
    /// The protocol.
    pub protocol: Protocol,
    /// Events the endpoint accepted since the previous report.
    pub delivered: u64,
    /// Events it refused, that could not be sent, or that were dropped
    /// before export.
    pub failed: u64,
    /// Events whose export had not ended when the flush timeout passed:
    /// they may still arrive.
    pub unconfirmed: u64,
    /// Why, one entry per distinct reason (at most five), in the words of
    /// the endpoint when it answered.
    pub reasons: Vec<String>,
    /// The flush timeout that `unconfirmed` refers to.
    pub flush_timeout: Duration,
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = self.failed + self.unconfirmed;
        write!(
            f,
            "{missing} of {} audit events not delivered to {} ({})",
            missing + self.delivered,
            self.endpoint,
            self.protocol
        )?;
        let mut separator = ": ";
        for reason in &self.reasons {
            write!(f, "{separator}{reason}")?;
            separator = "; ";
        }
        if self.unconfirmed > 0 {
            write!(
                f,
                "{separator}{} not confirmed within {:?}",
                self.unconfirmed, self.flush_timeout
            )?;
        }
        Ok(())
    }
}

/// Why a flush or shutdown did not confirm every event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Some events did not arrive.
    #[error("{0}")]
    NotDelivered(DeliveryFailure),
    /// The sender was shut down before this call.
    #[error("the audit sender for {endpoint} is already shut down")]
    ShutDown {
        /// The endpoint, as configured.
        endpoint: String,
    },
}

/// Builds an [`AuditSender`].
#[derive(Debug, Clone)]
#[must_use = "a sender builder does nothing until `build` is called"]
pub struct AuditSenderBuilder {
    endpoint: Option<String>,
    protocol: Protocol,
    timeout: Duration,
    flush_timeout: Option<Duration>,
    queue_size: usize,
    service_name: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

impl Default for AuditSenderBuilder {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: Protocol::default(),
            timeout: Duration::from_secs(10),
            flush_timeout: None,
            queue_size: 2048,
            service_name: None,
            ca_pem: None,
        }
    }
}

impl AuditSenderBuilder {
    /// The endpoint's URL, `http://` (plain text) or `https://` (TLS):
    /// `http://127.0.0.1:4317` for gRPC (no path), a base URL such as
    /// `http://127.0.0.1:4318` for HTTP, to which `/v1/logs` is appended.
    /// Default: [`Protocol::default_endpoint`].
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The protocol (default gRPC).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// How long one export may take, connecting and retrying included
    /// (default 10 s). Failures worth retrying (unavailable, throttled) are
    /// retried with backoff within it, as the OTLP exporter does.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long [`AuditSender::force_flush`] and [`AuditSender::shutdown`]
    /// wait for the events emitted before them (default: 3 × `timeout`).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = Some(timeout);
        self
    }

    /// How many events may wait for export (default 2048). One more is not
    /// queued: it counts as failed in the next report, instead of being
    /// dropped silently as the batch processor would.
    pub fn queue_size(mut self, events: usize) -> Self {
        self.queue_size = events;
        self
    }

    /// The resource attribute `service.name` (default: `OTEL_SERVICE_NAME`,
    /// else the SDK's `unknown_service`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// PEM certificates of CAs to trust for an `https://` endpoint, besides
    /// the built-in (webpki) roots.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Starts the sender: one I/O thread for the connections, the
    /// OpenTelemetry batch processor's export thread, nothing sent yet.
    /// Connections are opened on the first export.
    pub fn build(self) -> Result<AuditSender, BuildError> {
        if self.timeout.is_zero() {
            return Err(BuildError::InvalidSetting {
                setting: "timeout",
                reason: "must be more than 0",
            });
        }
        if self.queue_size == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "queue_size",
                reason: "must be at least 1",
            });
        }
        let protocol = self.protocol;
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| protocol.default_endpoint().to_owned());
        let tls = check_endpoint(&endpoint, protocol)?;
        if self.ca_pem.is_some() && !tls {
            return Err(BuildError::InvalidEndpoint {
                endpoint,
                reason: "CA certificates are for TLS: use an https:// endpoint".to_owned(),
            });
        }
        // The connections run here, whatever runtime (if any) the caller
        // has: the batch processor exports from a plain thread and waits.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("auditcol-sdk-io")
            .enable_all()
            .build()
            .map_err(BuildError::Runtime)?;
        let ledger = Arc::new(DeliveryLedger::default());
        let exporter = match protocol {
            Protocol::Grpc => self.grpc_exporter(&endpoint, tls, &runtime)?,
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                self.http_exporter(&endpoint, &runtime, ledger.clone())?
            }
        };
        let mut resource = Resource::builder();
        if let Some(name) = &self.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let processor =
            BatchLogProcessor::builder(RecordingExporter::new(exporter, ledger.clone()))
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(self.queue_size)
                        .build(),
                )
                .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource.build())
            .with_log_processor(processor)
            .build();
        Ok(AuditSender {
            audit: AuditLogger::from_provider(&provider),
            provider,
            ledger,
            endpoint,
            protocol,
            flush_timeout: self.flush_timeout.unwrap_or(self.timeout * 3),
            queue_size: self.queue_size as u64,
            shut_down: AtomicBool::new(false),
            runtime: Some(runtime),
        })
    }

    fn grpc_exporter(
        &self,
        endpoint: &str,
        tls: bool,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<opentelemetry_otlp::LogExporter, BuildError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        let invalid = |reason: String| BuildError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let mut target = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout);
        if tls {
            let mut config = ClientTlsConfig::new().with_webpki_roots();
            if let Some(pem) = &self.ca_pem {
                check_pem(pem)?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            target = target
                .tls_config(config)
                .map_err(|e| BuildError::CaCertificates(e.to_string()))?;
        }
        // The channel's connection tasks are spawned on the sender's runtime.
        let channel = {
            let _runtime = runtime.enter();
            target.connect_lazy()
        };
        opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_channel(channel)
            .with_timeout(self.timeout)
            .build()
            .map_err(|e| BuildError::Exporter(e.to_string()))
    }

    fn http_exporter(
        &self,
        endpoint: &str,
        runtime: &tokio::runtime::Runtime,
        ledger: Arc<DeliveryLedger>,
    ) -> Result<opentelemetry_otlp::LogExporter, BuildError> {
        let mut client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout);
        if let Some(pem) = &self.ca_pem {
            check_pem(pem)?;
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| BuildError::CaCertificates(e.to_string()))?;
            for certificate in certificates {
                client = client.add_root_certificate(certificate);
            }
        }
        let client = client
            .build()
            .map_err(|e| BuildError::Exporter(e.to_string()))?;
        let otlp_protocol = if self.protocol == Protocol::HttpJson {
            opentelemetry_otlp::Protocol::HttpJson
        } else {
            opentelemetry_otlp::Protocol::HttpBinary
        };
        opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/logs", endpoint.trim_end_matches('/')))
            .with_protocol(otlp_protocol)
            .with_timeout(self.timeout)
            .with_http_client(LedgerHttpClient {
                client,
                runtime: runtime.handle().clone(),
                ledger,
            })
            .build()
            .map_err(|e| BuildError::Exporter(e.to_string()))
    }
}

/// Checks that `endpoint` is a URL the protocol can use; true for TLS.
fn check_endpoint(endpoint: &str, protocol: Protocol) -> Result<bool, BuildError> {
    let invalid = |reason: &str| BuildError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(_) => return Err(invalid("use http:// (plain text) or https:// (TLS)")),
        None => {
            return Err(invalid(
                "no scheme: write http://host:port (plain text) or https://host:port (TLS)",
            ));
        }
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("a query string is not allowed"));
    }
    if protocol == Protocol::Grpc && !matches!(uri.path(), "" | "/") {
        return Err(invalid(
            "a gRPC endpoint has no path: write scheme://host:port",
        ));
    }
    Ok(tls)
}

/// PEM text with at least one certificate, or an error that says so.
fn check_pem(pem: &[u8]) -> Result<(), BuildError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| BuildError::CaCertificates("the PEM text is not UTF-8".to_owned()))?;
    if text.contains("-----BEGIN CERTIFICATE-----") {
        Ok(())
    } else {
        Err(BuildError::CaCertificates(
            "no `-----BEGIN CERTIFICATE-----` block in the PEM text".to_owned(),
        ))
    }
}

/// Sends audit events to one OTLP endpoint and reports whether they
/// arrived.
///
/// It owns an OpenTelemetry [`SdkLoggerProvider`] with a batch processor
/// and the official OTLP exporter (gRPC or HTTP), plus one I/O thread for
/// the connections, so it works the same from synchronous code and from
/// any async runtime. [`emit`](Self::emit) queues an event and returns;
/// the batch processor exports in the background (every second, or once
/// 512 events wait).
///
/// The batch processor logs export errors instead of returning them; this
/// sender records the outcome of every export, so that
/// [`force_flush`](Self::force_flush) and [`shutdown`](Self::shutdown) can
/// say what arrived and what did not, with the endpoint's reason. Both block
/// the calling thread (up to the flush timeout): in async code, call them
/// from `spawn_blocking`.
///
/// **On drop**, a sender that was not shut down shuts down: it exports
/// what is queued (waiting up to the flush timeout) and logs any failure
/// with `tracing` at WARN, since a drop cannot return it. Call
/// [`shutdown`](Self::shutdown) to learn the outcome.
///
/// ```no_run
/// use auditcol_sdk::{AuditEvent, AuditSender, Protocol};
///
/// let sender = AuditSender::builder()
///     .endpoint("http://127.0.0.1:4317")
///     .protocol(Protocol::Grpc)
///     .service_name("billing")
///     .build()?;
/// sender.emit(&AuditEvent::builder("invoice", "voided").actor("email", "ops@example.com").build()?);
/// match sender.shutdown() {
///     Ok(report) => println!("{} audit events delivered", report.delivered),
///     Err(e) => eprintln!("{e}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AuditSender {
    audit: AuditLogger<SdkLogger>,
    provider: SdkLoggerProvider,
    ledger: Arc<DeliveryLedger>,
    endpoint: String,
    protocol: Protocol,
    flush_timeout: Duration,
    queue_size: u64,
    shut_down: AtomicBool,
    /// Dropped after the provider has shut down: exports need it.
    runtime: Option<tokio::runtime::Runtime>,
}

impl AuditSender {
    /// A builder with the defaults: gRPC to `http://127.0.0.1:4317`, 10 s
    /// timeout, a queue of 2048 events.
    pub fn builder() -> AuditSenderBuilder {
        AuditSenderBuilder::default()
    }

    /// The endpoint, as configured.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Queues `event` for export and returns at once. An event emitted after
    /// [`shutdown`](Self::shutdown), or while the queue is full, is not sent
    /// and counts as failed in the next report.
    pub fn emit(&self, event: &AuditEvent) {
        if self.shut_down.load(Ordering::Acquire) {
            self.ledger.refuse("emitted after the sender was shut down");
        } else if self.ledger.admit(self.queue_size) {
            self.audit.emit(event);
        }
    }

    /// Exports every queued event and waits until each event emitted before
    /// this call has been accepted or refused by the endpoint, up to the
    /// flush timeout. Reports everything settled since the previous report:
    /// `Ok` when it all arrived, otherwise what did not and why (events
    /// exported in the background count too).
    pub fn force_flush(&self) -> Result<DeliveryReport, DeliveryError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(self.shut_down_error());
        }
        let emitted = self.ledger.emitted();
        let deadline = Instant::now() + self.flush_timeout;
        // The outcome of each export is in the ledger; the processor's own
        // result covers only its last batch.
        let _ = self.provider.force_flush();
        self.outcome(self.ledger.report(emitted, deadline))
    }

    /// Exports every queued event, waits as [`force_flush`](Self::force_flush)
    /// does, and stops the export and I/O threads. Later events are not sent.
    pub fn shutdown(&self) -> Result<DeliveryReport, DeliveryError> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(self.shut_down_error());
        }
        let emitted = self.ledger.emitted();
        let deadline = Instant::now() + self.flush_timeout;
        let _ = self.provider.shutdown_with_timeout(self.flush_timeout);
        self.outcome(self.ledger.report(emitted, deadline))
    }

    fn shut_down_error(&self) -> DeliveryError {
        DeliveryError::ShutDown {
            endpoint: self.endpoint.clone(),
        }
    }

    fn outcome(&self, settled: Settlement) -> Result<DeliveryReport, DeliveryError> {
        if settled.failed == 0 && settled.unconfirmed == 0 {
            return Ok(DeliveryReport {
                delivered: settled.delivered,
            });
        }
        let mut reasons = settled.reasons;
        if settled.more_reasons {
            reasons.push("and other reasons".to_owned());
        }
        Err(DeliveryError::NotDelivered(DeliveryFailure {
            endpoint: self.endpoint.clone(),
            protocol: self.protocol,
            delivered: settled.delivered,
            failed: settled.failed,
            unconfirmed: settled.unconfirmed,
            reasons,
            flush_timeout: self.flush_timeout,
        }))
    }
}

impl Drop for AuditSender {
    fn drop(&mut self) {
        if !self.shut_down.load(Ordering::Acquire)
            && let Err(e) = self.shutdown()
        {
            tracing::warn!(target: "auditcol_sdk", "audit sender dropped: {e}");
        }
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so a sender may be dropped inside async code.
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_spelled_as_in_the_otel_environment_variable() {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
            assert_eq!(protocol.to_string().parse::<Protocol>(), Ok(protocol));
        }
        assert_eq!(
            "http".parse::<Protocol>().unwrap_err().to_string(),
            "unknown protocol \"http\": use grpc, http/protobuf or http/json"
        );
    }

    #[test]
    fn endpoints_need_a_scheme_and_a_host() {
        let cases = [
            ("127.0.0.1:4317", Protocol::Grpc, "no scheme"),
            (
                "ftp://x:1",
                Protocol::Grpc,
                "use http:// (plain text) or https://",
            ),
            (
                "http://h:1/v1",
                Protocol::Grpc,
                "a gRPC endpoint has no path",
            ),
            ("http://h:1/?a=b", Protocol::HttpJson, "a query string"),
            ("http:// bad", Protocol::HttpJson, "invalid"),
        ];
        for (endpoint, protocol, expected) in cases {
            let err = AuditSender::builder()
                .endpoint(endpoint)
                .protocol(protocol)
                .build()
                .unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid endpoint {endpoint:?}")),
                "{err}"
            );
            assert!(err.to_string().contains(expected), "{endpoint}: {err}");
        }
        assert!(check_endpoint("https://h:1/otlp", Protocol::HttpProtobuf).unwrap());
        assert!(!check_endpoint("http://h:1", Protocol::Grpc).unwrap());
    }

    #[test]
    fn ca_certificates_need_tls_and_pem() {
        let err = AuditSender::builder()
            .tls_ca_pem("-----BEGIN CERTIFICATE-----")
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("use an https:// endpoint"),
            "{err}"
        );
        let err = AuditSender::builder()
            .endpoint("https://127.0.0.1:4317")
            .tls_ca_pem("not pem")
            .build()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot use the CA certificates: no `-----BEGIN CERTIFICATE-----`"),
            "{err}"
        );
    }

    #[test]
    fn a_zero_timeout_or_queue_is_refused() {
        let err = AuditSender::builder()
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid timeout: must be more than 0");
        let err = AuditSender::builder().queue_size(0).build().unwrap_err();
        assert_eq!(err.to_string(), "invalid queue_size: must be at least 1");
    }

    #[test]
    fn a_failure_names_the_endpoint_the_counts_and_the_reasons() {
        let failure = DeliveryFailure {
            endpoint: "http://127.0.0.1:4317".into(),
            protocol: Protocol::Grpc,
            delivered: 1,
            failed: 2,
            unconfirmed: 1,
            reasons: vec!["refused".into(), "unreachable".into()],
            flush_timeout: Duration::from_secs(30),
        };
        assert_eq!(
            failure.to_string(),
            "3 of 4 audit events not delivered to http://127.0.0.1:4317 (grpc): refused; unreachable; 1 not confirmed within 30s"
        );
    }

    /// A port on 127.0.0.1 that nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn event() -> AuditEvent {
        AuditEvent::builder("flag", "created").build().unwrap()
    }

    #[test]
    fn an_unreachable_endpoint_is_reported_by_flush_with_its_address() {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
            let endpoint = format!("http://127.0.0.1:{}", closed_port());
            let sender = AuditSender::builder()
                .endpoint(&endpoint)
                .protocol(protocol)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            sender.emit(&event());
            let Err(DeliveryError::NotDelivered(failure)) = sender.force_flush() else {
                panic!("{protocol}: delivered to a closed port")
            };
            assert_eq!((failure.failed, failure.delivered), (1, 0), "{failure}");
            let text = failure.to_string();
            assert!(text.contains(&endpoint), "{text}");
            assert!(
                text.to_lowercase().contains("connect") || text.contains("Unavailable"),
                "{protocol}: {text}"
            );
        }
    }

    #[test]
    fn shutdown_reports_once_and_later_events_fail() {
        let sender = AuditSender::builder()
            .endpoint(format!("http://127.0.0.1:{}", closed_port()))
            .protocol(Protocol::HttpProtobuf)
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        assert_eq!(sender.shutdown(), Ok(DeliveryReport { delivered: 0 }));
        assert!(matches!(
            sender.shutdown(),
            Err(DeliveryError::ShutDown { .. })
        ));
        assert!(matches!(
            sender.force_flush(),
            Err(DeliveryError::ShutDown { .. })
        ));
        sender.emit(&event());
        // The event emitted after shutdown is counted, not lost silently.
        let settled = sender.ledger.report(0, Instant::now());
        assert_eq!(settled.failed, 1);
        assert_eq!(settled.reasons, ["emitted after the sender was shut down"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_sender_works_and_drops_inside_a_single_threaded_runtime() {
        // The connections run on the sender's own thread, so a flush from
        // the only thread of the caller's runtime cannot deadlock.
        let sender = AuditSender::builder()
            .endpoint(format!("http://127.0.0.1:{}", closed_port()))
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        sender.emit(&event());
        assert!(sender.force_flush().is_err());
        drop(sender);
    }
}
