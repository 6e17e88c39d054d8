//! The filter processor's per-record work on one core: read the noun and
//! verb from the batch's index and match them against the rules.
//!
//! ```sh
//! cargo bench -p auditcol-processor-filter --bench filter
//! ```

use auditcol_core::LogBatch;
use auditcol_processor_filter::{EventFilter, EventPattern};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const RECORDS: usize = 1000;

fn benches(c: &mut Criterion) {
    let batch = LogBatch::sample_audit(RECORDS);
    let pattern = |p: &str| EventPattern::parse(p).expect("valid pattern");
    let filter = EventFilter::new(
        vec![
            pattern("flag:*"),
            pattern("segment:deleted"),
            pattern("*:created"),
        ],
        vec![pattern("*:read")],
    );
    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("retain", |b| {
        b.iter_batched(
            || batch.clone(),
            |mut batch| {
                batch.retain(|r| {
                    r.audit_noun_verb()
                        .is_some_and(|(n, v)| filter.matches(n, v))
                });
                batch
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(filter_benches, benches);
criterion_main!(filter_benches);
