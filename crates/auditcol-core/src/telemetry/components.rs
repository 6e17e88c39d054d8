//! What receivers, processors and exporters count, in the Collector's
//! names and labels, and the logs of what they drop or refuse.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::{Counter, LogLevel, MetricSpec, MetricsLevel, RateLimitedLog, Telemetry};
use crate::{ComponentId, PipelineError};

// The Collector's receiverhelper metrics.
const RECEIVER_ACCEPTED: MetricSpec = MetricSpec::counter(
    "otelcol_receiver_accepted_log_records",
    "Number of log records successfully pushed into the pipeline",
    MetricsLevel::Basic,
);
const RECEIVER_REFUSED: MetricSpec = MetricSpec::counter(
    "otelcol_receiver_refused_log_records",
    "Number of log records that could not be pushed into the pipeline",
    MetricsLevel::Basic,
);
const RECEIVER_REFUSED_REQUESTS: MetricSpec = MetricSpec::counter(
    "auditcol_receiver_refused_requests",
    "Requests (Kafka: messages) a receiver refused as a whole, by reason",
    MetricsLevel::Normal,
);
const RECEIVER_REFUSED_CONNECTIONS: MetricSpec = MetricSpec::counter(
    "auditcol_receiver_refused_connections",
    "Connections closed on accept because max_connections were open",
    MetricsLevel::Normal,
);
const RECEIVER_CLOSED_CONNECTIONS: MetricSpec = MetricSpec::counter(
    "auditcol_receiver_closed_connections",
    "Connections a receiver closed for breaking a rule, by reason",
    MetricsLevel::Normal,
);
const RECEIVER_DROPPED: MetricSpec = MetricSpec::counter(
    "auditcol_receiver_dropped_log_records",
    "Entries a receiver acknowledged without passing them on, by reason",
    MetricsLevel::Normal,
);

// The Collector's processorhelper metrics.
const PROCESSOR_INCOMING: MetricSpec = MetricSpec::counter(
    "otelcol_processor_incoming_items",
    "Number of items passed to the processor",
    MetricsLevel::Basic,
);
const PROCESSOR_OUTGOING: MetricSpec = MetricSpec::counter(
    "otelcol_processor_outgoing_items",
    "Number of items emitted from the processor",
    MetricsLevel::Basic,
);
const PROCESSOR_DROPPED: MetricSpec = MetricSpec::counter(
    "auditcol_processor_dropped_log_records",
    "Log records a processor dropped on purpose, by reason",
    MetricsLevel::Normal,
);

// The Collector's exporterhelper metrics.
const EXPORTER_SENT: MetricSpec = MetricSpec::counter(
    "otelcol_exporter_sent_log_records",
    "Number of log record successfully sent to destination",
    MetricsLevel::Basic,
);
const EXPORTER_SEND_FAILED: MetricSpec = MetricSpec::counter(
    "otelcol_exporter_send_failed_log_records",
    "Number of log records in failed attempts to send to destination",
    MetricsLevel::Basic,
);
const EXPORTER_ENQUEUE_FAILED: MetricSpec = MetricSpec::counter(
    "otelcol_exporter_enqueue_failed_log_records",
    "Number of log records failed to be added to the sending queue",
    MetricsLevel::Basic,
);
/// `otelcol_exporter_queue_size`: read at scrape time.
pub(crate) const EXPORTER_QUEUE_SIZE: MetricSpec = MetricSpec::gauge(
    "otelcol_exporter_queue_size",
    "Current size of the retry queue (in the unit of sending_queue.sizer)",
    MetricsLevel::Basic,
);
/// `otelcol_exporter_queue_capacity`: read at scrape time.
pub(crate) const EXPORTER_QUEUE_CAPACITY: MetricSpec = MetricSpec::gauge(
    "otelcol_exporter_queue_capacity",
    "Fixed capacity of the retry queue (in the unit of sending_queue.sizer)",
    MetricsLevel::Basic,
);
/// `auditcol_exporter_persistent_queue_fsyncs`: read at scrape time.
pub(crate) const EXPORTER_QUEUE_FSYNCS: MetricSpec = MetricSpec::counter(
    "auditcol_exporter_persistent_queue_fsyncs",
    "fdatasync calls of the persistent sending queue (one covers every push waiting)",
    MetricsLevel::Normal,
);
const EXPORTER_DROPPED: MetricSpec = MetricSpec::counter(
    "auditcol_exporter_dropped_log_records",
    "Log records an exporter did not send because its format cannot carry them, by reason",
    MetricsLevel::Normal,
);

/// Every metric the core registers for components (the Kafka receiver
/// declares its own), for the documentation test.
pub const METRICS: &[MetricSpec] = &[
    RECEIVER_ACCEPTED,
    RECEIVER_REFUSED,
    RECEIVER_REFUSED_REQUESTS,
    RECEIVER_REFUSED_CONNECTIONS,
    RECEIVER_CLOSED_CONNECTIONS,
    RECEIVER_DROPPED,
    PROCESSOR_INCOMING,
    PROCESSOR_OUTGOING,
    PROCESSOR_DROPPED,
    EXPORTER_SENT,
    EXPORTER_SEND_FAILED,
    EXPORTER_ENQUEUE_FAILED,
    EXPORTER_QUEUE_SIZE,
    EXPORTER_QUEUE_CAPACITY,
    EXPORTER_QUEUE_FSYNCS,
    EXPORTER_DROPPED,
];

/// The `otel_signal` / `data_type` label value: auditcol carries logs only.
const SIGNAL: &str = "logs";

/// Why a receiver refused a request, or records of it: the `reason` label
/// of `auditcol_receiver_refused_requests` and of the refusal logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Undecodable, or breaking the audit conventions (OTLP
    /// INVALID_ARGUMENT / HTTP 400; a Kafka message that does not decode).
    Invalid,
    /// Larger than the receiver takes (HTTP 413 / RESOURCE_EXHAUSTED).
    TooLarge,
    /// A media type, encoding or method the receiver does not speak (415, UNIMPLEMENTED).
    Unsupported,
    /// A webhook whose HMAC signature is missing or wrong (401).
    Signature,
    /// Refused by an authenticator (401 / UNAUTHENTICATED, or 503 /
    /// UNAVAILABLE when the credentials could not be checked): counted by
    /// [`crate::auth::RequestAuth`] in
    /// `auditcol_receiver_refused_requests{reason="unauthenticated"}`, and
    /// logged by it, rate-limited, with the client's address.
    Unauthenticated,
    /// The pipeline is full: the client was asked to retry later.
    Backpressure,
    /// The pipeline failed for now (an exporter down, shutting down).
    Unavailable,
    /// The pipeline refused the records for good (a permanent error).
    Rejected,
}

/// Why a receiver closed a connection
/// (`auditcol_receiver_closed_connections{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No request for `idle_timeout` (HTTP) or `max_connection_idle`
    /// (gRPC): HTTP/1 closed, HTTP/2 sent GOAWAY NO_ERROR.
    Idle,
    /// An HTTP/1 request head not complete within `read_header_timeout`.
    ReadHeaderTimeout,
    /// Pings more often than the ping policy allows: GOAWAY
    /// ENHANCE_YOUR_CALM `too_many_pings`.
    TooManyPings,
}

impl CloseReason {
    /// Every reason, in declaration order.
    pub const ALL: [CloseReason; 3] = [
        CloseReason::Idle,
        CloseReason::ReadHeaderTimeout,
        CloseReason::TooManyPings,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::ReadHeaderTimeout => "read_header_timeout",
            CloseReason::TooManyPings => "too_many_pings",
        }
    }
}

impl RefusalReason {
    /// Every reason, in the order of [`RefusalReason::index`].
    pub const ALL: [RefusalReason; 8] = [
        Self::Invalid,
        Self::TooLarge,
        Self::Unsupported,
        Self::Signature,
        Self::Unauthenticated,
        Self::Backpressure,
        Self::Unavailable,
        Self::Rejected,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::Unsupported => "unsupported",
            Self::Signature => "signature",
            Self::Unauthenticated => "unauthenticated",
            Self::Backpressure => "backpressure",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The reason a pipeline refusal is counted under.
    pub fn of(error: &PipelineError) -> Self {
        match error {
            PipelineError::Permanent { .. } => Self::Rejected,
            PipelineError::Backpressure { .. } => Self::Backpressure,
            PipelineError::Retryable { .. } => Self::Unavailable,
        }
    }
}

/// Why records were dropped on purpose: the `reason` label of the
/// `auditcol_*_dropped_log_records` metrics and of the drop logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not an audit event (no `audit.type`/`audit.action`).
    NonAudit,
    /// An audit event that no `events` pattern of a filter matches.
    NotIncluded,
    /// An audit event an `exclude` pattern of a filter matches.
    Excluded,
}

impl DropReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NonAudit => "non_audit",
            Self::NotIncluded => "not_included",
            Self::Excluded => "excluded",
        }
    }
}

/// What one receiver counts for one transport (`grpc`, `http`, `kafka`):
/// records accepted and refused, requests refused by reason, connections
/// refused, entries dropped; refusals and drops are logged, rate-limited.
///
/// The series of a reason appear with its first refusal, as the
/// Collector's do; accepted and refused records are there from the start.
pub struct ReceiverTelemetry {
    telemetry: Telemetry,
    receiver: String,
    transport: String,
    /// `receivers::<id> (<transport>)`, for logs.
    component: String,
    accepted: Counter,
    refused: Counter,
    refusals: [OnceLock<(Counter, Arc<RateLimitedLog>)>; RefusalReason::ALL.len()],
    refused_connections: OnceLock<(Counter, Arc<RateLimitedLog>)>,
    closed_connections: [OnceLock<Counter>; CloseReason::ALL.len()],
    non_audit: OnceLock<Drops>,
}

impl ReceiverTelemetry {
    pub(super) fn new(telemetry: &Telemetry, id: &ComponentId, transport: &str) -> Self {
        let receiver = id.to_string();
        let base = [("receiver", receiver.as_str()), ("transport", transport)];
        Self {
            accepted: telemetry.counter(&RECEIVER_ACCEPTED, &base),
            refused: telemetry.counter(&RECEIVER_REFUSED, &base),
            telemetry: telemetry.clone(),
            component: format!("receivers::{id} ({transport})"),
            receiver,
            transport: transport.to_owned(),
            refusals: Default::default(),
            refused_connections: OnceLock::new(),
            closed_connections: Default::default(),
            non_audit: OnceLock::new(),
        }
    }

    fn labels_with<'a>(
        &'a self,
        key: &'static str,
        value: &'a str,
    ) -> [(&'static str, &'a str); 3] {
        [
            ("receiver", self.receiver.as_str()),
            ("transport", self.transport.as_str()),
            (key, value),
        ]
    }

    fn refusal(&self, reason: RefusalReason) -> &(Counter, Arc<RateLimitedLog>) {
        self.refusals[reason.index()].get_or_init(|| {
            (
                self.telemetry.counter(
                    &RECEIVER_REFUSED_REQUESTS,
                    &self.labels_with("reason", reason.as_str()),
                ),
                self.telemetry.rate_limited_log(
                    LogLevel::Warn,
                    // Kafka has messages; the others requests.
                    if self.transport == "kafka" {
                        "refused a message"
                    } else {
                        "refused a request"
                    },
                    &self.component,
                    reason.as_str(),
                ),
            )
        })
    }

    /// `records` were accepted by the pipeline.
    pub fn accepted(&self, records: usize) {
        self.accepted.inc_by(records as u64);
    }

    /// A whole request was refused for `reason`: counted (with its
    /// `records` when they are known, 0 otherwise) and logged with the
    /// client's address and `error`.
    pub fn refused_request(
        &self,
        reason: RefusalReason,
        records: usize,
        client: Option<SocketAddr>,
        error: &dyn Display,
    ) {
        let (requests, log) = self.refusal(reason);
        requests.inc();
        self.refused.inc_by(records as u64);
        log.record(records, client, error);
    }

    /// A whole request was refused for `reason` where the caller logs the
    /// refusal itself (an authenticator's refusal, logged by
    /// [`crate::auth::RequestAuth`] without the credential): counted only.
    pub fn count_refused_request(&self, reason: RefusalReason) {
        self.refusal(reason).0.inc();
    }

    /// Records of a request the pipeline otherwise took were refused
    /// (invalid records left out, reported to the client as a partial
    /// success): counted and logged; the request is not counted as refused.
    pub fn refused_records(
        &self,
        reason: RefusalReason,
        records: usize,
        client: Option<SocketAddr>,
        error: &dyn Display,
    ) {
        self.refused.inc_by(records as u64);
        self.refusal(reason).1.record(records, client, error);
    }

    /// `records` were refused where the caller logs them itself (a Kafka
    /// batch the pipeline refused for good, logged at ERROR with its
    /// offsets): counted only.
    pub fn count_refused(&self, records: usize) {
        self.refused.inc_by(records as u64);
    }

    /// A connection was closed on accept (`max_connections`).
    pub fn refused_connection(&self, client: SocketAddr, max_connections: usize) {
        let (counter, log) = self.refused_connections.get_or_init(|| {
            (
                self.telemetry.counter(
                    &RECEIVER_REFUSED_CONNECTIONS,
                    &[
                        ("receiver", self.receiver.as_str()),
                        ("transport", self.transport.as_str()),
                    ],
                ),
                self.telemetry.rate_limited_log(
                    LogLevel::Warn,
                    "refused a connection",
                    &self.component,
                    "max_connections",
                ),
            )
        });
        counter.inc();
        log.record(
            0,
            Some(client),
            &format_args!("{max_connections} connections (max_connections) are open"),
        );
    }

    /// A connection was closed for breaking one of the listener's rules.
    /// Counted only: idle connections are closed in the normal course, and
    /// the other two are logged at DEBUG where they happen.
    pub fn closed_connection(&self, reason: CloseReason) {
        self.closed_connections[reason as usize]
            .get_or_init(|| {
                self.telemetry.counter(
                    &RECEIVER_CLOSED_CONNECTIONS,
                    &self.labels_with("reason", reason.as_str()),
                )
            })
            .inc();
    }

    /// `entries` that are not audit events were acknowledged and dropped.
    pub fn dropped_non_audit(&self, entries: usize, client: Option<SocketAddr>) {
        if entries == 0 {
            return;
        }
        let drops = self.non_audit.get_or_init(|| Drops {
            counter: self.telemetry.counter(
                &RECEIVER_DROPPED,
                &self.labels_with("reason", DropReason::NonAudit.as_str()),
            ),
            log: self.telemetry.rate_limited_log(
                LogLevel::Warn,
                "dropped entries that are not audit events",
                &self.component,
                DropReason::NonAudit.as_str(),
            ),
        });
        drops.counter.inc_by(entries as u64);
        drops.log.record(
            entries,
            client,
            &"the request carries entries that are not audit events: acknowledged, not kept",
        );
    }

    /// Records accepted so far (for tests).
    pub fn accepted_records(&self) -> u64 {
        self.accepted.get()
    }

    /// Records refused so far (for tests).
    pub fn refused_log_records(&self) -> u64 {
        self.refused.get()
    }
}

/// Drops of one reason by one component: a counter and its log.
pub struct Drops {
    counter: Counter,
    log: Arc<RateLimitedLog>,
}

impl Drops {
    /// `records` were dropped; `detail` says what, for the first log line.
    pub fn add(&self, records: usize, detail: &dyn Display) {
        if records == 0 {
            return;
        }
        self.counter.inc_by(records as u64);
        self.log.record(records, None, detail);
    }

    /// Records counted so far (for tests).
    pub fn count(&self) -> u64 {
        self.counter.get()
    }
}

/// The counters of the exporter helper, in the Collector's names.
pub struct ExporterTelemetry {
    /// `otelcol_exporter_sent_log_records`.
    pub sent: Counter,
    /// `otelcol_exporter_send_failed_log_records`.
    pub send_failed: Counter,
    /// `otelcol_exporter_enqueue_failed_log_records`.
    pub enqueue_failed: Counter,
}

impl Telemetry {
    /// The handles of receiver `id` for `transport` (`grpc`, `http`, `kafka`).
    pub fn receiver(&self, id: &ComponentId, transport: &str) -> ReceiverTelemetry {
        ReceiverTelemetry::new(self, id, transport)
    }

    /// The drops of processor `id` for `reason`: counted in
    /// `auditcol_processor_dropped_log_records` and logged at INFO, rate-limited.
    pub fn processor_drops(&self, id: &dyn Display, reason: DropReason) -> Drops {
        let processor = id.to_string();
        Drops {
            counter: self.counter(
                &PROCESSOR_DROPPED,
                &[
                    ("processor", processor.as_str()),
                    ("reason", reason.as_str()),
                ],
            ),
            log: self.rate_limited_log(
                LogLevel::Info,
                match reason {
                    DropReason::NonAudit => "dropped records that are not audit events",
                    DropReason::NotIncluded | DropReason::Excluded => {
                        "dropped audit events by the filter rules"
                    }
                },
                &format!("processors::{id}"),
                reason.as_str(),
            ),
        }
    }

    /// `otelcol_processor_incoming_items` and `_outgoing_items` of processor
    /// `id`: the pipeline counts them around every processor.
    pub fn processor_items(&self, id: &ComponentId) -> (Counter, Counter) {
        let processor = id.to_string();
        let labels = [("otel_signal", SIGNAL), ("processor", processor.as_str())];
        (
            self.counter(&PROCESSOR_INCOMING, &labels),
            self.counter(&PROCESSOR_OUTGOING, &labels),
        )
    }

    /// The counters of exporter `id`'s helper.
    pub fn exporter(&self, id: &ComponentId) -> ExporterTelemetry {
        let exporter = id.to_string();
        let labels = [("exporter", exporter.as_str())];
        ExporterTelemetry {
            sent: self.counter(&EXPORTER_SENT, &labels),
            send_failed: self.counter(&EXPORTER_SEND_FAILED, &labels),
            enqueue_failed: self.counter(&EXPORTER_ENQUEUE_FAILED, &labels),
        }
    }

    /// The drops of exporter `id` for `reason` (records its format cannot
    /// carry): counted in `auditcol_exporter_dropped_log_records` and logged
    /// at WARN, rate-limited.
    pub fn exporter_drops(&self, id: &dyn Display, reason: DropReason) -> Drops {
        let exporter = id.to_string();
        Drops {
            counter: self.counter(
                &EXPORTER_DROPPED,
                &[("exporter", exporter.as_str()), ("reason", reason.as_str())],
            ),
            log: self.rate_limited_log(
                LogLevel::Warn,
                "dropped records that are not audit events: this exporter's format carries audit events only",
                &format!("exporters::{id}"),
                reason.as_str(),
            ),
        }
    }

    /// Reports the sending queue of exporter `id` at every scrape:
    /// `otelcol_exporter_queue_size` and `_capacity` from `read` (size,
    /// capacity; `None` while there is no queue), and the persistent
    /// queue's fsyncs from `fsyncs`.
    pub fn observe_exporter_queue(
        &self,
        id: &ComponentId,
        read: impl Fn() -> Option<(usize, usize)> + Send + Sync + Clone + 'static,
        fsyncs: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) {
        let exporter = id.to_string();
        let labels = [("data_type", SIGNAL), ("exporter", exporter.as_str())];
        let size = read.clone();
        self.observe(
            &EXPORTER_QUEUE_SIZE,
            &labels,
            Box::new(move || size().map(|(size, _)| size as u64)),
        );
        self.observe(
            &EXPORTER_QUEUE_CAPACITY,
            &labels,
            Box::new(move || read().map(|(_, capacity)| capacity as u64)),
        );
        self.observe(
            &EXPORTER_QUEUE_FSYNCS,
            &[("exporter", exporter.as_str())],
            Box::new(fsyncs),
        );
    }
}
