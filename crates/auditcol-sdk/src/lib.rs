//! Send audit events from a Rust service as OTLP log records, through the
//! official OpenTelemetry SDK, to auditcol or any OTLP endpoint.
//!
//! An audit event says who did what to which thing, and how it ended:
//! `flag` (the type, a noun) `created` (the action, a verb) by actor
//! `email=kyle@example.com`, status `success`, with the flag as payload.
//! auditcol carries such events as OpenTelemetry log records with `audit.*`
//! attributes; this crate writes them exactly as auditcol's contract says
//! (the table is on [`AuditLogger`]), so that auditcol's `file` exporter
//! writes back the very event you built.
//!
//! Three pieces:
//!
//! - [`AuditEvent`] and its [`builder`](AuditEvent::builder): the event,
//!   its names checked when it is built ([`EventError`] says what is wrong).
//! - [`AuditLogger`]: emits events through any OpenTelemetry
//!   [`Logger`](opentelemetry::logs::Logger), for a service that already
//!   has a logger provider (its processors, exporters, flush and shutdown).
//! - [`AuditSender`]: a logger provider of its own with the official OTLP
//!   exporter (gRPC, HTTP/protobuf or HTTP/JSON) to one endpoint, which
//!   also reports — on [`force_flush`](AuditSender::force_flush) and
//!   [`shutdown`](AuditSender::shutdown) — which events arrived and why
//!   others did not. The OpenTelemetry batch processor only logs export
//!   errors; a sender records each export's outcome, and over HTTP the
//!   collector's own message and any records it rejected (OTLP partial
//!   success). Over gRPC the reason is the status code (and the connection
//!   error, if any): the official exporter does not pass the server's
//!   message or a partial success on.
//!
//! An event, emitted through a logger provider you already have (here one
//! without exporters):
//!
//! ```
//! use auditcol_sdk::{AuditEvent, AuditLogger};
//! use opentelemetry_sdk::logs::SdkLoggerProvider;
//! use serde_json::json;
//!
//! let event = AuditEvent::builder("Flag", "Created")
//!     .actor("email", "kyle@example.com")
//!     .payload(json!({"key": "dark-mode"}))
//!     .timestamp_unix_nanos(1_714_557_600_000_000_000)
//!     .build()?;
//! assert_eq!(event.event_name(), "audit.flag.created");
//! // What auditcol's `file` exporter (format `json`) will write for it:
//! assert_eq!(
//!     serde_json::to_string(event.as_flipt())?,
//!     r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"email":"kyle@example.com"}},"payload":{"key":"dark-mode"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#
//! );
//! // An invalid name is refused when the event is built:
//! let err = AuditEvent::builder("flag", "created").actor("e mail", "x").build().unwrap_err();
//! assert!(err.to_string().starts_with(r#"actor field name "e mail" is not a valid name"#));
//!
//! let provider = SdkLoggerProvider::builder().build();
//! AuditLogger::from_provider(&provider).emit(&event);
//! provider.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same event sent to a collector, with a report of what arrived:
//!
//! ```no_run
//! use auditcol_sdk::{AuditEvent, AuditSender, Protocol};
//! use serde_json::json;
//!
//! let sender = AuditSender::builder()
//!     .endpoint("http://127.0.0.1:4318")
//!     .protocol(Protocol::HttpProtobuf)
//!     .build()?;
//!
//! let event = AuditEvent::builder("flag", "updated")
//!     .status("success")
//!     .actor("email", "kyle@example.com")
//!     .actor("ip", "10.0.0.7")
//!     .payload(json!({"key": "dark-mode", "enabled": true}))
//!     .build()?;
//! sender.emit(&event);
//!
//! // Blocks until the collector has answered (or the flush timeout).
//! if let Err(e) = sender.shutdown() {
//!     eprintln!("audit events lost: {e}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Things to know:
//! - Payload objects reach the collector with their members in no
//!   particular order (the OpenTelemetry Rust API keeps maps in a
//!   `HashMap`); `null` members and array elements are left out, since the
//!   API has no empty value. The JSON is otherwise the same.
//! - The OpenTelemetry API takes event names as `&'static str`; each
//!   distinct `audit.<type>.<action>` is allocated once for the life of the
//!   process.
//! - Timestamps default to the time the event is built; without an id,
//!   the collector assigns one (a UUIDv7) on receipt.

mod event;
mod http_client;
mod ledger;
mod logger;
mod names;
mod sender;

pub use event::{AuditEvent, AuditEventBuilder, EventError};
pub use logger::{AuditLogger, SCOPE_NAME};
pub use sender::{
    AuditSender, AuditSenderBuilder, BuildError, DeliveryError, DeliveryFailure, DeliveryReport,
    Protocol, UnknownProtocol,
};

/// The audit model this crate builds on: the Flipt v0.2 event
/// ([`model::AuditEvent`]), the attribute names ([`model::conventions`]),
/// RFC 3339 timestamps ([`model::timestamp`]).
pub use auditcol_model as model;
