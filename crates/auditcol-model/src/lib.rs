//! The audit event model of auditcol and its mapping to OTLP log records.
//!
//! [`AuditEvent`] mirrors the Flipt v0.2 audit event field for field. The
//! collector carries events as OTLP log records; [`conventions`] names the
//! attributes and [`AuditEvent::to_log_record`] / [`AuditEvent::from_log_record`]
//! convert in both directions. The mapping round-trips: event → record →
//! event gives the same JSON.
//!
//! This crate is deliberately small so that the SDK can depend on it without
//! pulling in the pipeline.
//!
//! ```
//! use auditcol_model::AuditEvent;
//! let json = r#"{"version":"0.2","type":"flag","action":"created",
//!   "metadata":{"actor":{"authentication":"none","ip":"172.17.0.1"}},
//!   "payload":{"key":"flipt","enabled":true},
//!   "timestamp":"2024-05-01T10:00:00Z","status":"success"}"#;
//! let event: AuditEvent = serde_json::from_str(json).unwrap();
//! let record = event.to_log_record();
//! assert_eq!(record.event_name, "audit.flag.created");
//! let back = AuditEvent::from_log_record(&record).unwrap();
//! assert_eq!(back, event);
//! ```

pub mod anyvalue;
pub mod audit;
pub mod conventions;
mod event;
pub mod json;
mod mapping;
pub mod timestamp;
pub mod view;
pub mod wire;

pub use event::{Actor, AuditEvent, Metadata};
pub use mapping::{MappingError, is_valid_name, str_attribute, string_kv, validate_record};

/// Re-export of the OTLP types this crate speaks, so users need not pin the
/// same `opentelemetry-proto` version themselves.
pub use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, KeyValue},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
};
