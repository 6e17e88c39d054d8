//! The pipeline machinery of auditcol.
//!
//! - [`LogBatch`]: the unit of data, a batch of OTLP log records. Every
//!   component works through its API, never on the generated OTLP types.
//! - [`LogsConsumer`]: the one contract between stages. `consume` completes
//!   only when the batch is safely downstream (exported, or durably queued);
//!   receivers acknowledge their clients only then.
//! - [`PipelineError`]: retryable, permanent or backpressure.
//! - [`component`]: the receiver / processor / exporter traits and their
//!   factories; [`config`]: the YAML collector config; [`pipeline`]: the
//!   graph built from it; [`exporterhelper`]: timeout, retry and queue that
//!   every exporter wraps; [`receiverhelper`]: what every receiver does the
//!   same way (listen address, receipt time, refusal → HTTP answer);
//!   [`tls`] (feature `tls`): server and client TLS settings, one type each
//!   for every listener and client.
//!   [`auth`]: the authenticators extensions offer to receivers and exporters;
//!   [`memorylimiter`]: the `memory_limiter` state receivers ask before
//!   they read a request.
//! - [`telemetry`]: the collector's own metrics (in the OpenTelemetry
//!   Collector's names) and rate-limited logs of drops and refusals;
//!   [`status`]: the state of the service and of each component, for the
//!   health check.

pub mod auth;
pub mod batch;
pub mod component;
pub mod config;
pub mod consumer;
pub mod error;
pub mod exporterhelper;
#[cfg(feature = "http-client")]
pub mod httpclient;
pub mod memorylimiter;
pub mod otlp_json;
pub mod otlp_response;
pub mod pipeline;
pub mod receiverhelper;
pub mod rpc_status;
pub mod signature;
pub mod status;
pub mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;

pub use auditcol_model as model;
pub use batch::{DecodeError, Decoded, LogBatch, RecordEdit, RecordError, RecordRef};
pub use component::{
    BuildContext, Component, ComponentId, ComponentKind, Connectivity, Exporter, ExporterFactory,
    Extension, ExtensionFactory, Host, Leftover, Processor, ProcessorFactory, Receiver,
    ReceiverFactory, Registry,
};
pub use consumer::{FanOut, LogsConsumer, SharedConsumer};
pub use error::PipelineError;
