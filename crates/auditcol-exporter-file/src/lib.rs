//! The `file` exporter: audit events to standard output or to a file.
//!
//! ```yaml
//! exporters:
//!   file/audit:
//!     path: /var/log/auditcol/audit.jsonl   # absent or "-" = stdout
//!     format: json                           # json (default) | console | otlp_json
//!     rotation: { max_megabytes: 100, max_backups: 100 }
//!     sync: true                             # fsync each batch before acknowledging it
//!     integrity:                             # hash chain + signed checkpoints in audit.jsonl.chain
//!       signing_key_file: /etc/auditcol/keys/auditcol-signing.pem
//! ```
//!
//! The exporter is an [`ExporterHelper`] around a [`FileSender`]: the helper
//! queues, retries and times out; the sender encodes a whole batch into one
//! buffer and appends it with a single write on a blocking thread, so lines
//! of concurrent batches never interleave. A failed write is retryable.
//! With `integrity`, `trail.rs` keeps the sidecar of checkpoints beside the
//! file on a thread of its own (format: `auditcol_integrity`).

use std::sync::Arc;

use auditcol_core::component::{BuildContext, Exporter, ExporterFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::exporterhelper::ExporterHelper;
use auditcol_core::telemetry::DropReason;

pub mod config;
mod format;
mod group;
mod sender;
mod trail;
mod writer;

pub use config::{FileExporterConfig, Format, IntegritySettings, RotationSettings};
pub use format::encode_batch;
pub use sender::FileSender;

/// The type name in component ids: `file`, `file/<name>`.
pub const TYPE_NAME: &str = "file";

/// Builds `file` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileExporterFactory;

impl ExporterFactory for FileExporterFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let config: FileExporterConfig = ctx.parse_config(config)?;
        let sender = FileSender::new(ctx.id.to_string(), &config)
            .with_non_audit_drops(ctx.telemetry.exporter_drops(&ctx.id, DropReason::NonAudit));
        Ok(Arc::new(ExporterHelper::new(
            ctx,
            config.helper_settings(),
            Arc::new(sender),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::LogBatch;
    use auditcol_core::component::ComponentId;
    use auditcol_model::AuditEvent;
    use std::time::Duration;
    use tokio::time::Instant;

    const SEED: &str = r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"authentication":"none","ip":"172.17.0.1"}},"payload":{"key":"flipt"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#;

    fn seed_batch() -> LogBatch {
        let event: AuditEvent = serde_json::from_str(SEED).unwrap();
        LogBatch::from_events("flipt", [&event])
    }

    fn build(config: serde_json::Value) -> Arc<dyn Exporter> {
        let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, Some("test")));
        FileExporterFactory.build(&ctx, &config).unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn build_has_no_side_effect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        build(serde_json::json!({"path": path}));
        assert!(!dir.path().join("sub").exists());
    }

    #[test]
    fn build_reports_config_errors_with_their_path() {
        let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None));
        let err = FileExporterFactory
            .build(&ctx, &serde_json::json!({"rotation": {}}))
            .err()
            .unwrap();
        assert_eq!(err.path, "rotation");
    }

    #[tokio::test]
    async fn events_are_appended_to_the_file_creating_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/audit.jsonl");
        let exporter = build(serde_json::json!({"path": path}));
        exporter.start().await.unwrap();
        exporter.consume(seed_batch()).await.unwrap();
        exporter.consume(seed_batch()).await.unwrap();
        exporter.shutdown(far()).await;
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{SEED}\n{SEED}\n")
        );
    }

    #[tokio::test]
    async fn synced_writes_are_in_the_file_when_consume_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let exporter = build(serde_json::json!({"path": path, "sync": true, "format": "console"}));
        exporter.start().await.unwrap();
        exporter.consume(seed_batch()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "2024-05-01T10:00:00.000Z flag:created success actor: authentication=none ip=172.17.0.1 payload: {\"key\":\"flipt\"}\n"
        );
        exporter.shutdown(far()).await;
    }

    #[tokio::test]
    async fn otlp_json_batches_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.otlp.jsonl");
        let exporter = build(serde_json::json!({"path": path, "format": "otlp_json"}));
        exporter.start().await.unwrap();
        exporter.consume(LogBatch::sample_audit(3)).await.unwrap();
        exporter.shutdown(far()).await;
        let text = std::fs::read_to_string(&path).unwrap();
        let decoded = LogBatch::decode_json(text.trim_end().as_bytes()).unwrap();
        assert!(decoded.batch == LogBatch::sample_audit(3));
    }

    #[tokio::test]
    async fn an_unwritable_path_fails_start() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let exporter = build(serde_json::json!({"path": blocker.join("audit.jsonl")}));
        let err = exporter.start().await.unwrap_err();
        assert!(err.0.contains("cannot open"), "{err}");
    }

    #[tokio::test]
    async fn every_format_keeps_a_trail_of_its_own_lines() {
        for (format, lines) in [("json", 4), ("console", 4), ("otlp_json", 2)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.log");
            let exporter = build(serde_json::json!({
                "path": path,
                "format": format,
                "integrity": {"hmac_key": "a secret for the test trail"},
            }));
            exporter.start().await.unwrap();
            exporter.consume(seed_batch()).await.unwrap();
            exporter.consume(LogBatch::sample_audit(3)).await.unwrap();
            exporter.shutdown(far()).await;
            let key = auditcol_integrity::TrailVerifier::hmac(b"a secret for the test trail");
            let report = auditcol_integrity::verify_paths(
                std::slice::from_ref(&path),
                &key,
                auditcol_integrity::VerifyOptions { strict: true },
                &auditcol_integrity::verify::NoProgress,
            );
            assert!(report.ok, "{format}: {report:#?}");
            assert_eq!(report.trails[0].lines, lines, "{format}");
        }
    }

    #[tokio::test]
    async fn with_integrity_the_trail_verifies_after_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let exporter = build(serde_json::json!({
            "path": path,
            "integrity": {"hmac_key": "a secret for the test trail"},
        }));
        exporter.start().await.unwrap();
        exporter.consume(seed_batch()).await.unwrap();
        exporter.consume(LogBatch::sample_audit(3)).await.unwrap();
        exporter.shutdown(far()).await;
        let key = auditcol_integrity::TrailVerifier::hmac(b"a secret for the test trail");
        let report = auditcol_integrity::verify_paths(
            std::slice::from_ref(&path),
            &key,
            auditcol_integrity::VerifyOptions { strict: true },
            &auditcol_integrity::verify::NoProgress,
        );
        assert!(report.ok, "{report:#?}");
        assert_eq!(report.trails[0].lines, 4);
        assert_eq!(report.trails[0].exporter, "file/test");
        assert!(
            std::fs::read_to_string(&path).unwrap().starts_with(SEED),
            "lines unchanged"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_synced_batches_are_each_acknowledged_once_written_and_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let exporter = build(serde_json::json!({
            "path": path,
            "sync": true,
            "integrity": {"hmac_key": "a secret for the test trail"},
            "sending_queue": {"enabled": false},
        }));
        exporter.start().await.unwrap();
        let key = auditcol_integrity::TrailVerifier::hmac(b"a secret for the test trail");
        let verify = || {
            auditcol_integrity::verify_paths(
                std::slice::from_ref(&path),
                &key,
                auditcol_integrity::VerifyOptions { strict: true },
                &auditcol_integrity::verify::NoProgress,
            )
        };
        // Rounds of concurrent sends: those that wait together share a
        // group (one sync, one checkpoint). When every send of a round has
        // returned, all of its lines are in the file and checkpointed.
        for round in 1..=4u64 {
            let sends = (0..16).map(|_| exporter.consume(LogBatch::sample_audit(5)));
            for sent in futures::future::join_all(sends).await {
                sent.unwrap();
            }
            let report = verify();
            assert!(report.ok, "round {round}: {report:#?}");
            assert_eq!(report.trails[0].lines, round * 80, "round {round}");
        }
        exporter.shutdown(far()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn without_sync_a_checkpoint_comes_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let exporter = build(serde_json::json!({
            "path": path,
            "integrity": {"hmac_key": "a secret for the test trail", "checkpoint_interval": "10s"},
        }));
        exporter.start().await.unwrap();
        let sidecar = auditcol_integrity::sidecar_path(&path);
        let checkpoints = || std::fs::read_to_string(&sidecar).unwrap().lines().count();
        assert_eq!(checkpoints(), 1, "the trail's start");
        exporter.consume(seed_batch()).await.unwrap();
        assert_eq!(checkpoints(), 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while checkpoints() < 2 {
            assert!(
                Instant::now() < deadline,
                "no checkpoint after the interval"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        exporter.shutdown(far()).await;
        assert_eq!(checkpoints(), 2, "nothing new to checkpoint at shutdown");
    }

    #[tokio::test]
    async fn a_missing_signing_key_fails_start_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let exporter = build(serde_json::json!({
            "path": dir.path().join("audit.jsonl"),
            "integrity": {"signing_key_file": dir.path().join("nope.pem")},
        }));
        let err = exporter.start().await.unwrap_err();
        assert!(
            err.0.contains("integrity.signing_key_file") && err.0.contains("nope.pem"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn stdout_accepts_every_format() {
        for format in ["json", "console", "otlp_json"] {
            let exporter = build(serde_json::json!({"path": "-", "format": format}));
            exporter.start().await.unwrap();
            exporter.consume(LogBatch::sample_audit(2)).await.unwrap();
            exporter.shutdown(far()).await;
        }
    }
}
