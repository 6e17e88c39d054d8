//! Receiver tests over real sockets on 127.0.0.1 with OS-chosen ports, and
//! a test consumer that records batches and answers what it is told to.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ::http::{Method, StatusCode};
use async_trait::async_trait;
use auditcol_core::config::{Secret, parse_component_config};
use auditcol_core::{Component, ComponentId, LogBatch, LogsConsumer, PipelineError};
use serde_json::json;

use super::*;

mod auth;
mod factory;
mod http;
mod lifecycle;
mod memory;
mod robustness;
mod telemetry;

/// Records every batch and answers with `answer`.
pub(crate) struct TestConsumer {
    batches: Mutex<Vec<LogBatch>>,
    answer: Mutex<Result<(), PipelineError>>,
}

impl TestConsumer {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            batches: Mutex::new(Vec::new()),
            answer: Mutex::new(Ok(())),
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

    /// The `json` output lines of every record received so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.batches()
            .iter()
            .flat_map(|b| {
                b.records()
                    .map(|r| {
                        let mut out = Vec::new();
                        assert!(r.write_audit_json(&mut out));
                        String::from_utf8(out).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Records received so far, all batches together.
    pub(crate) fn records(&self) -> usize {
        self.batches().iter().map(LogBatch::len).sum()
    }
}

#[async_trait]
impl LogsConsumer for TestConsumer {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.batches.lock().unwrap().push(batch);
        self.answer.lock().unwrap().clone()
    }
}

/// A started receiver and its consumer.
pub(crate) struct Running {
    pub(crate) receiver: Arc<WebhookReceiver>,
    pub(crate) consumer: Arc<TestConsumer>,
    pub(crate) config: WebhookReceiverConfig,
}

/// Starts `webhook/<name>` (or `webhook`) on 127.0.0.1:0 with `settings`
/// (e.g. `json!({"format": "flagsmith"})`).
pub(crate) async fn start_named(name: Option<&str>, settings: serde_json::Value) -> Running {
    start_with(
        name,
        settings,
        &auditcol_core::telemetry::Telemetry::disabled(),
    )
    .await
}

/// [`start_named`], counting in `telemetry`.
pub(crate) async fn start_with(
    name: Option<&str>,
    settings: serde_json::Value,
    telemetry: &auditcol_core::telemetry::Telemetry,
) -> Running {
    let mut raw = json!({"endpoint": "127.0.0.1:0"});
    if let serde_json::Value::Object(settings) = settings {
        for (k, v) in settings {
            raw[k] = v;
        }
    }
    let config: WebhookReceiverConfig = parse_component_config(&raw).unwrap();
    let consumer = TestConsumer::new();
    let receiver = Arc::new(
        WebhookReceiver::new(
            ComponentId::new("webhook", name),
            config.clone(),
            consumer.clone(),
        )
        .with_telemetry(telemetry),
    );
    receiver.start().await.unwrap();
    Running {
        receiver,
        consumer,
        config,
    }
}

pub(crate) async fn start(settings: serde_json::Value) -> Running {
    start_named(None, settings).await
}

impl Running {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.receiver.local_addr().expect("started")
    }
}

pub(crate) use auditcol_testkit::{Reply, send};

/// POSTs `body` to the receiver's path with `headers`.
pub(crate) async fn post(running: &Running, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    send(
        running.addr(),
        Method::POST,
        &running.config.path,
        headers,
        body.to_vec(),
    )
    .await
}

/// POSTs a JSON body.
pub(crate) async fn post_json(running: &Running, body: &[u8]) -> Reply {
    post(running, &[("content-type", "application/json")], body).await
}

/// The Flipt documentation's example event with another timestamp (the
/// documented one, the Unix epoch, reads as "unknown" in OTLP).
pub(crate) fn flipt_event(key: &str, timestamp: &str) -> String {
    format!(
        r#"{{"version":"0.2","type":"flag","action":"created","metadata":{{"actor":{{"authentication":"none","ip":"172.17.0.1"}}}},"payload":{{"description":"flipt flag","enabled":true,"key":"{key}","name":"{key}","namespace_key":"default"}},"timestamp":"{timestamp}","status":"success"}}"#
    )
}

/// One Flagsmith audit-log entry as its organisation webhooks send it.
pub(crate) fn flagsmith_envelope(id: u64, log: &str) -> String {
    json!({
        "data": {
            "author": {"email": "user@domain.com", "first_name": "Kyle", "id": 3, "last_name": "Johnson"},
            "created_date": "2024-05-01T10:00:00.250000Z",
            "environment": {"id": 12, "name": "production"},
            "id": id,
            "is_system_event": false,
            "log": log,
            "project": {"id": 6, "name": "Project name", "organisation": 1},
            "related_object_id": 6,
            "related_object_type": "FEATURE",
            "related_object_uuid": null
        },
        "event_type": "AUDIT_LOG_CREATED"
    })
    .to_string()
}

/// Signs `body` as the senders do.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    SignatureVerifier::new(secret, ::http::HeaderName::from_static("x")).sign(body)
}

/// POSTs a JSON body, signed when the receiver has a secret.
pub(crate) async fn post_signed(running: &Running, body: &[u8]) -> Reply {
    let header = running.config.signature_header_name().unwrap();
    let signature = running
        .config
        .signing_secret
        .as_ref()
        .map(Secret::expose)
        .map(|secret| sign(secret, body));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(signature) = &signature {
        headers.push((header.as_str(), signature.as_str()));
    }
    post(running, &headers, body).await
}

/// A good request in the receiver's format.
pub(crate) fn good_body(running: &Running, key: &str) -> String {
    match running.config.format {
        Format::Audit => flipt_event(key, "2024-05-01T10:00:00Z"),
        Format::Flagsmith => flagsmith_envelope(7, &format!("New Segment created: {key}")),
    }
}

/// The receiver still takes a good (signed) request after a bad one.
pub(crate) async fn assert_still_serves(running: &Running) {
    let before = running.consumer.records();
    let reply = post_signed(running, good_body(running, "after").as_bytes()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({"accepted": 1}));
    assert_eq!(running.consumer.records(), before + 1);
}
