//! Receiver tests over real sockets on 127.0.0.1 with OS-chosen ports, and
//! a test consumer that records batches and answers what it is told to.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auditcol_core::config::parse_component_config;
use auditcol_core::model::conventions::{AUDIT_ID, AUDIT_SOURCE};
use auditcol_core::{Component, ComponentId, LogBatch, LogsConsumer, PipelineError};
use serde_json::json;

use super::*;

mod auth;
mod factory;
mod grpc;
mod http;
mod lifecycle;
mod memory;
mod telemetry;
mod tls;

/// Records every batch and answers with `answer`. While a test holds
/// `hold`, `consume` waits (after signalling `entered`), which keeps a
/// request in flight.
pub(crate) struct TestConsumer {
    batches: Mutex<Vec<LogBatch>>,
    answer: Mutex<Result<(), PipelineError>>,
    pub(crate) hold: tokio::sync::Mutex<()>,
    pub(crate) entered: tokio::sync::Notify,
}

impl TestConsumer {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            batches: Mutex::new(Vec::new()),
            answer: Mutex::new(Ok(())),
            hold: tokio::sync::Mutex::new(()),
            entered: tokio::sync::Notify::new(),
        })
    }

    /// From now on, answers `answer`.
    pub(crate) fn answer(&self, answer: Result<(), PipelineError>) {
        *self.answer.lock().unwrap() = answer;
    }

    /// The batches received so far.
    pub(crate) fn batches(&self) -> Vec<LogBatch> {
        self.batches.lock().unwrap().clone()
    }

    /// Records received so far, all batches together.
    pub(crate) fn records(&self) -> usize {
        self.batches().iter().map(LogBatch::len).sum()
    }
}

#[async_trait]
impl LogsConsumer for TestConsumer {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.entered.notify_one();
        let _held = self.hold.lock().await;
        self.batches.lock().unwrap().push(batch);
        self.answer.lock().unwrap().clone()
    }
}

/// A started receiver and its consumer.
pub(crate) struct Running {
    pub(crate) receiver: Arc<OtlpReceiver>,
    pub(crate) consumer: Arc<TestConsumer>,
}

impl Running {
    pub(crate) fn addr(&self, protocol: &str) -> SocketAddr {
        self.receiver
            .local_addrs()
            .into_iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("{protocol} is not listening"))
    }

    pub(crate) fn grpc_url(&self) -> String {
        format!("http://{}", self.addr("grpc"))
    }
}

/// Starts a receiver with both protocols on 127.0.0.1:0, merged with `extra`
/// settings per protocol, e.g. `json!({"grpc": {"max_recv_msg_size_mib": 1}})`.
pub(crate) async fn start(extra: serde_json::Value) -> Running {
    start_with(extra, &auditcol_core::telemetry::Telemetry::disabled()).await
}

/// [`start`], counting in `telemetry`.
pub(crate) async fn start_with(
    extra: serde_json::Value,
    telemetry: &auditcol_core::telemetry::Telemetry,
) -> Running {
    let mut protocols = json!({
        "grpc": {"endpoint": "127.0.0.1:0"},
        "http": {"endpoint": "127.0.0.1:0"},
    });
    let mut config = json!({});
    if let serde_json::Value::Object(extra) = extra {
        for (protocol, settings) in extra {
            if protocol == "on_invalid_record" {
                config[&protocol] = settings;
            } else if let serde_json::Value::Object(settings) = settings {
                for (k, v) in settings {
                    protocols[&protocol][&k] = v;
                }
            }
        }
    }
    config["protocols"] = protocols;
    let config: OtlpReceiverConfig = parse_component_config(&config).unwrap();
    let consumer = TestConsumer::new();
    let receiver = Arc::new(
        OtlpReceiver::new(ComponentId::new("otlp", None), config, consumer.clone())
            .with_telemetry(telemetry),
    );
    receiver.start().await.unwrap();
    Running { receiver, consumer }
}

/// Checks what the receiver adds to every record it accepts.
pub(crate) fn assert_stamped(batch: &LogBatch) {
    for record in batch.records() {
        assert!(record.attribute(AUDIT_ID).is_some_and(|id| !id.is_empty()));
        assert_eq!(
            record.attribute(AUDIT_SOURCE),
            Some("test"),
            "kept from the sender"
        );
        assert!(record.observed_time_unix_nano() > 0);
    }
}

/// One record with `audit.type` but no `audit.action`.
pub(crate) fn incomplete_audit_request() -> auditcol_core::model::ExportLogsServiceRequest {
    use auditcol_core::model::{
        ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs, string_kv,
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    attributes: vec![string_kv("audit.type", "flag")],
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Three records: an audit event, one with `audit.type` but no
/// `audit.action`, and another audit event.
pub(crate) fn mixed_request() -> auditcol_core::model::ExportLogsServiceRequest {
    let mut request = unsourced_audit_request();
    let records = &mut request.resource_logs[0].scope_logs[0].log_records;
    let good = records[0].clone();
    let bad = incomplete_audit_request().resource_logs[0].scope_logs[0].log_records[0].clone();
    records.push(bad);
    records.push(good);
    request
}

/// An audit event that carries no `audit.source` nor `audit.id`: the
/// receiver must stamp it as coming from `otlp`.
pub(crate) fn unsourced_audit_request() -> auditcol_core::model::ExportLogsServiceRequest {
    let mut request = incomplete_audit_request();
    request.resource_logs[0].scope_logs[0].log_records[0]
        .attributes
        .push(auditcol_core::model::string_kv("audit.action", "created"));
    request
}
