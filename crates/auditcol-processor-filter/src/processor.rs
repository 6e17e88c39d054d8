//! The filter processor itself.

use async_trait::async_trait;
use auditcol_core::component::{Component, ComponentId, Processor};
use auditcol_core::telemetry::{DropReason, Drops, Telemetry};
use auditcol_core::{LogBatch, LogsConsumer, PipelineError, SharedConsumer};

use crate::config::{FilterConfig, NonAudit};
use crate::pattern::{EventFilter, Verdict};

/// Keeps the audit events that match its [`EventFilter`] (and, if
/// configured, records that are not audit events) and passes them on.
///
/// Dropped records are acknowledged: dropping them is what the user asked
/// for, so a batch filtered down to nothing completes with `Ok` without
/// calling the next stage. They are counted by reason
/// (`auditcol_processor_dropped_log_records`) and logged at INFO,
/// rate-limited.
pub struct FilterProcessor {
    filter: EventFilter,
    keep_non_audit: bool,
    next: SharedConsumer,
    drops: FilterDrops,
}

/// The drop counters, by reason.
struct FilterDrops {
    non_audit: Drops,
    not_included: Drops,
    excluded: Drops,
}

impl FilterDrops {
    fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        Self {
            non_audit: telemetry.processor_drops(id, DropReason::NonAudit),
            not_included: telemetry.processor_drops(id, DropReason::NotIncluded),
            excluded: telemetry.processor_drops(id, DropReason::Excluded),
        }
    }
}

impl FilterProcessor {
    /// A processor applying `filter` and sending what passes to `next`.
    pub fn new(filter: EventFilter, non_audit: NonAudit, next: SharedConsumer) -> Self {
        Self {
            filter,
            keep_non_audit: non_audit == NonAudit::Keep,
            next,
            drops: FilterDrops::new(
                &Telemetry::disabled(),
                &ComponentId::new(crate::TYPE_NAME, None),
            ),
        }
    }

    /// The same processor, counting its drops as processor `id` in `telemetry`.
    pub fn with_telemetry(mut self, telemetry: &Telemetry, id: &ComponentId) -> Self {
        self.drops = FilterDrops::new(telemetry, id);
        self
    }

    /// Records dropped so far: (not audit events, not included, excluded).
    pub fn dropped(&self) -> (u64, u64, u64) {
        (
            self.drops.non_audit.count(),
            self.drops.not_included.count(),
            self.drops.excluded.count(),
        )
    }

    /// A processor from validated settings.
    pub fn from_config(
        config: &FilterConfig,
        next: SharedConsumer,
    ) -> Result<Self, auditcol_core::config::ConfigError> {
        Ok(Self::new(config.compile()?, config.non_audit, next))
    }

    /// The compiled rules.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }
}

#[async_trait]
impl Component for FilterProcessor {}

#[async_trait]
impl LogsConsumer for FilterProcessor {
    async fn consume(&self, mut batch: LogBatch) -> Result<(), PipelineError> {
        // Counted on the stack, added once per batch; the first dropped
        // event of each reason is named on the first log line of its kind.
        let (mut non_audit, mut not_included, mut excluded) = (0, 0, 0);
        let (mut first_not_included, mut first_excluded) = (None, None);
        batch.retain(|record| match record.audit_noun_verb() {
            Some((noun, verb)) => match self.filter.verdict(noun, verb) {
                Verdict::Keep => true,
                Verdict::NotIncluded => {
                    if not_included == 0 {
                        first_not_included = Some(FirstDropped::of(noun, verb, record.audit_id()));
                    }
                    not_included += 1;
                    false
                }
                Verdict::Excluded => {
                    if excluded == 0 {
                        first_excluded = Some(FirstDropped::of(noun, verb, record.audit_id()));
                    }
                    excluded += 1;
                    false
                }
            },
            None => {
                non_audit += usize::from(!self.keep_non_audit);
                self.keep_non_audit
            }
        });
        self.drops.non_audit.add(
            non_audit,
            &"records without audit.type and audit.action (set `non_audit: keep` to pass them on)",
        );
        self.drops.not_included.add(
            not_included,
            &Dropped {
                why: "audit events that no `events` pattern matches",
                first: first_not_included,
            },
        );
        self.drops.excluded.add(
            excluded,
            &Dropped {
                why: "audit events that an `exclude` pattern matches",
                first: first_excluded,
            },
        );
        if batch.is_empty() {
            return Ok(());
        }
        self.next.consume(batch).await
    }
}

impl Processor for FilterProcessor {}

/// The first event of a batch dropped for one reason: `noun:verb` and its
/// `audit.id`, for the log.
struct FirstDropped {
    event: String,
    audit_id: Option<String>,
}

impl FirstDropped {
    fn of(noun: &str, verb: &str, audit_id: Option<&str>) -> Self {
        Self {
            event: format!("{noun}:{verb}"),
            audit_id: audit_id.map(str::to_owned),
        }
    }
}

/// The detail of a drop log line: why, and the first event dropped.
struct Dropped {
    why: &'static str,
    first: Option<FirstDropped>,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.why)?;
        if let Some(first) = &self.first {
            write!(f, "; the first: {}", first.event)?;
            if let Some(id) = &first.audit_id {
                write!(f, " (audit.id {id})")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::model::{
        ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs, string_kv,
    };
    use std::sync::{Arc, Mutex};

    /// Records what reaches it as `noun:verb` (or `-` for non-audit records).
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl LogsConsumer for Recorder {
        async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
            let seen = batch
                .records()
                .map(|r| match r.audit_noun_verb() {
                    Some((n, v)) => format!("{n}:{v}"),
                    None => "-".to_owned(),
                })
                .collect();
            self.calls.lock().unwrap().push(seen);
            Ok(())
        }
    }

    /// A batch with one record per entry: `noun:verb` for an audit event,
    /// `-` for a plain log record. (A record with only `audit.type` never
    /// reaches a processor: decoding leaves it out.)
    fn batch(entries: &[&str]) -> LogBatch {
        let log_records = entries
            .iter()
            .map(|entry| {
                let mut attributes = Vec::new();
                if let Some((noun, verb)) = entry.split_once(':') {
                    attributes.push(string_kv("audit.type", noun));
                    if !verb.is_empty() {
                        attributes.push(string_kv("audit.action", verb));
                    }
                }
                LogRecord {
                    attributes,
                    ..Default::default()
                }
            })
            .collect();
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = prost::Message::encode_to_vec(&request);
        LogBatch::decode_protobuf(bytes.into())
            .unwrap()
            .all_or_nothing()
            .unwrap()
    }

    async fn run(config: serde_json::Value, entries: &[&str]) -> Vec<Vec<String>> {
        let config: FilterConfig = auditcol_core::config::parse_component_config(&config).unwrap();
        let recorder = Arc::new(Recorder::default());
        let processor = FilterProcessor::from_config(&config, recorder.clone()).unwrap();
        processor.consume(batch(entries)).await.unwrap();
        recorder.calls.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn records_pass_or_drop_as_specified() {
        use serde_json::json;
        let all = [
            "flag:created",
            "segment:deleted",
            "flag:read",
            "variant:created",
        ];
        // (config, input, what reaches the next stage)
        let cases: Vec<(serde_json::Value, Vec<&str>, Vec<&str>)> = vec![
            (json!({}), all.to_vec(), all.to_vec()),
            (
                json!({"events": ["flag:*"]}),
                all.to_vec(),
                vec!["flag:created", "flag:read"],
            ),
            (
                json!({"events": ["*:created"]}),
                all.to_vec(),
                vec!["flag:created", "variant:created"],
            ),
            (
                json!({"events": ["segment:deleted"]}),
                all.to_vec(),
                vec!["segment:deleted"],
            ),
            (
                json!({"events": ["flag:*", "segment:deleted"], "exclude": ["*:read"]}),
                all.to_vec(),
                vec!["flag:created", "segment:deleted"],
            ),
            (
                json!({"events": ["FLAG:Created"]}),
                vec!["flag:created", "Flag:CREATED"],
                vec!["flag:created", "Flag:CREATED"],
            ),
            (
                json!({"exclude": ["Flag:*"]}),
                vec!["FLAG:created", "segment:deleted"],
                vec!["segment:deleted"],
            ),
            (json!({}), vec!["flag:created", "-"], vec!["flag:created"]),
            (
                json!({"non_audit": "drop"}),
                vec!["-", "flag:created"],
                vec!["flag:created"],
            ),
            (
                json!({"non_audit": "keep"}),
                vec!["-", "flag:created"],
                vec!["-", "flag:created"],
            ),
            (
                json!({"events": ["segment:*"], "non_audit": "keep"}),
                vec!["-", "flag:created"],
                vec!["-"],
            ),
        ];
        for (config, input, expected) in cases {
            let calls = run(config.clone(), &input).await;
            assert_eq!(calls, vec![expected], "{config} on {input:?}");
        }
    }

    #[tokio::test]
    async fn drops_are_counted_by_reason() {
        let config: FilterConfig = auditcol_core::config::parse_component_config(
            &serde_json::json!({"events": ["flag:*"], "exclude": ["*:read"]}),
        )
        .unwrap();
        let recorder = Arc::new(Recorder::default());
        let processor = FilterProcessor::from_config(&config, recorder.clone()).unwrap();
        let entries = ["flag:created", "flag:read", "segment:created", "-", "-"];
        processor.consume(batch(&entries)).await.unwrap();
        processor.consume(batch(&entries)).await.unwrap();
        // (not audit events, not included, excluded)
        assert_eq!(processor.dropped(), (4, 2, 2));
        assert_eq!(
            *recorder.calls.lock().unwrap(),
            vec![vec!["flag:created"], vec!["flag:created"]]
        );
    }

    #[tokio::test]
    async fn the_first_drop_log_line_names_the_first_dropped_event_and_its_audit_id() {
        let (log, _guard) = auditcol_testkit::CapturedLog::start();
        let config: FilterConfig = auditcol_core::config::parse_component_config(
            &serde_json::json!({"events": ["flag:*"], "exclude": ["*:read"]}),
        )
        .unwrap();
        let processor =
            FilterProcessor::from_config(&config, Arc::new(Recorder::default())).unwrap();
        let mut input = batch(&[
            "flag:created",
            "segment:created",
            "flag:read",
            "team:deleted",
        ]);
        input.prepare_ingest(1, "test");
        let ids: Vec<String> = input
            .records()
            .map(|r| r.audit_id().unwrap().to_owned())
            .collect();
        processor.consume(input).await.unwrap();
        let text = log.text();
        assert!(
            text.contains(&format!(
                "audit events that no `events` pattern matches; the first: segment:created (audit.id {})",
                ids[1]
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "audit events that an `exclude` pattern matches; the first: flag:read (audit.id {})",
                ids[2]
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn batch_filtered_to_nothing_is_acknowledged_without_calling_next() {
        let calls = run(
            serde_json::json!({"events": ["team:*"]}),
            &["flag:created", "-"],
        )
        .await;
        assert!(calls.is_empty(), "{calls:?}");
    }

    #[tokio::test]
    async fn downstream_errors_reach_the_caller() {
        struct Failing;
        #[async_trait]
        impl LogsConsumer for Failing {
            async fn consume(&self, _: LogBatch) -> Result<(), PipelineError> {
                Err(PipelineError::retryable("exporter down"))
            }
        }
        let processor =
            FilterProcessor::from_config(&FilterConfig::default(), Arc::new(Failing)).unwrap();
        let err = processor
            .consume(LogBatch::sample_audit(2))
            .await
            .unwrap_err();
        assert_eq!(err, PipelineError::retryable("exporter down"));
    }
}
