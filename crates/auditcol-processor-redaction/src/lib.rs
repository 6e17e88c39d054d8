//! The `redaction` processor: pseudonymises, masks or deletes personal data
//! in audit events before they leave — the Collector's redaction processor,
//! for audit attributes and payload paths.
//!
//! ```yaml
//! processors:
//!   redaction:
//!     hash_key: ${env:AUDIT_HASH_KEY}
//!     attributes: {"audit.actor.email": hash, "audit.actor.ip": mask, "audit.actor.name": delete}
//!     body: {"*.password": delete, "secret*": mask}
//!     blocked_values: ['\b\d{13,16}\b']
//!     summary: info
//! ```
//!
//! Records nothing matches pass unchanged, byte for byte; a changed record
//! is rewritten and checked again through [`LogBatch::edit_records`].

use std::sync::Arc;

use async_trait::async_trait;
use auditcol_core::component::{BuildContext, Component, Processor, ProcessorFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::{LogBatch, LogsConsumer, PipelineError, SharedConsumer};

pub mod config;
pub mod glob;
mod redact;

pub use config::{Action, RedactionConfig, Summary};
pub use redact::{MASK, REDACTED, Redactor, mask};

/// The type name in component ids: `redaction`, `redaction/<name>`.
pub const TYPE_NAME: &str = "redaction";

/// Builds `redaction` processors.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactionProcessorFactory;

impl ProcessorFactory for RedactionProcessorFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let config: RedactionConfig = ctx.parse_config(config)?;
        Ok(Arc::new(RedactionProcessor {
            id: ctx.id.to_string(),
            redactor: Redactor::new(&config),
            next,
        }))
    }
}

/// Applies a [`Redactor`] to every record and passes the batch on.
pub struct RedactionProcessor {
    id: String,
    redactor: Redactor,
    next: SharedConsumer,
}

#[async_trait]
impl Component for RedactionProcessor {}

#[async_trait]
impl LogsConsumer for RedactionProcessor {
    async fn consume(&self, mut batch: LogBatch) -> Result<(), PipelineError> {
        let changed = batch
            .edit_records(|record| {
                let mut edit = record.to_edit();
                (!self.redactor.redact(&mut edit).is_empty()).then_some(edit)
            })
            .map_err(|e| {
                PipelineError::permanent(format!(
                    "processor {}: a redacted record is no longer valid: {e}",
                    self.id
                ))
            })?;
        if changed > 0 {
            tracing::debug!(processor = %self.id, records = changed, "redacted");
        }
        self.next.consume(batch).await
    }
}

impl Processor for RedactionProcessor {}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use auditcol_core::component::ComponentId;
    use auditcol_core::model::AuditEvent;
    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct Recording(Mutex<Vec<LogBatch>>);

    #[async_trait]
    impl LogsConsumer for Recording {
        async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
            self.0.lock().unwrap().push(batch);
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_event_leaves_with_its_personal_data_redacted() {
        let next = Arc::new(Recording::default());
        let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None));
        let processor = RedactionProcessorFactory
            .build(
                &ctx,
                &json!({
                    "hash_key": "k",
                    "attributes": {"audit.actor.email": "hash", "audit.actor.ip": "mask"},
                    "body": {"*.password": "delete"},
                }),
                next.clone(),
            )
            .unwrap();
        let mut event = AuditEvent::new("flag", "updated");
        event.metadata.actor.email = Some("kyle@example.com".into());
        event.metadata.actor.ip = Some("172.17.0.1".into());
        event.payload = json!({"key": "f", "auth": {"password": "hunter2"}});
        processor
            .consume(LogBatch::from_events("test", [&event]))
            .await
            .unwrap();
        let out = next.0.lock().unwrap()[0].clone();
        let mut json = Vec::new();
        assert!(out.records().next().unwrap().write_audit_json(&mut json));
        let text = String::from_utf8(json).unwrap();
        assert!(
            !text.contains("kyle@example.com") && !text.contains("hunter2"),
            "{text}"
        );
        let back: AuditEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.metadata.actor.ip.as_deref(), Some("172.17.0.0"));
        assert_eq!(back.payload, json!({"key": "f", "auth": {}}));
        assert_eq!(back.metadata.actor.email.unwrap().len(), 64);
    }
}
