use std::sync::Mutex;
use std::time::Duration;

use auditcol_core::component::{ComponentId, Host};
use auditcol_core::memorylimiter::Limits;

use super::*;

#[derive(Default)]
struct Collect(Mutex<usize>);

#[async_trait]
impl LogsConsumer for Collect {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        *self.0.lock().unwrap() += batch.len();
        Ok(())
    }
}

const MIB: u64 = 1 << 20;

fn limits() -> Limits {
    Limits {
        hard: 100 * MIB,
        soft: 80 * MIB,
    }
}

fn batch() -> LogBatch {
    LogBatch::sample_audit(3)
}

#[tokio::test]
async fn batches_pass_under_the_soft_limit() {
    let next = Arc::new(Collect::default());
    let limiter = MemoryLimiter::with_measure(limits(), Duration::ZERO, || Some(10 * MIB));
    let processor = MemoryLimiterProcessor::new(limiter, next.clone());
    processor.consume(batch()).await.unwrap();
    assert_eq!(*next.0.lock().unwrap(), 3);
}

#[tokio::test]
async fn batches_are_refused_with_backpressure_over_the_soft_limit() {
    let next = Arc::new(Collect::default());
    let limiter = MemoryLimiter::with_measure(limits(), Duration::ZERO, || Some(81 * MIB));
    let processor = MemoryLimiterProcessor::new(limiter.clone(), next.clone());
    let refused = processor.consume(batch()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            PipelineError::Backpressure {
                retry_after: Some(_),
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!((*next.0.lock().unwrap(), limiter.refused()), (0, 1));
}

#[test]
fn instances_of_one_id_share_one_limiter() {
    let host = Host::default();
    let id = ComponentId::new(TYPE_NAME, None);
    let config = serde_json::json!({"check_interval": "1s", "limit_mib": 100});
    let build = |pipeline: &str| {
        let ctx = BuildContext::new(id.clone())
            .in_pipeline(pipeline)
            .with_host(host.clone());
        MemoryLimiterProcessorFactory
            .build(&ctx, &config, Arc::new(Collect::default()))
            .unwrap()
    };
    build("logs/a");
    build("logs/b");
    let limiters = host.memory_limiters_of([&id]);
    assert_eq!(limiters.len(), 1);
    assert_eq!(limiters[0].limits().hard, 100 * MIB);
}

#[test]
fn the_factory_rejects_a_config_without_check_interval() {
    let error = MemoryLimiterProcessorFactory
        .build(
            &BuildContext::new(ComponentId::new(TYPE_NAME, None)),
            &serde_json::json!({"limit_mib": 100}),
            Arc::new(Collect::default()),
        )
        .err()
        .unwrap();
    assert_eq!(error.path, "check_interval");
}
